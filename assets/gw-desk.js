/* GridWall desk client: keeps a desk page live through /live (session cookie, no token).
 *
 * A desk page renders one hidden config element (class gw-live-config, layouts/desk.py live_config)
 * whose JSON names the room to join (street:<code>, grid:<code>, case:<id>, or wall for the
 * district), the Dash store to bump when a tick touches that room and the least seconds between
 * two bumps. The script follows page changes (Dash navigation swaps the element), joins and leaves
 * rooms on one socket, and bumps the store with dash_clientside.set_props; the page's read-only
 * callback then rebuilds the live part from the server.
 */
(function () {
  "use strict";
  var sock = null, room = null, current = null, seen = null, last = 0, timer = null;

  function bump(cfg) {
    var dc = window.dash_clientside;
    if (!cfg.refresh || !dc || !dc.set_props) { return; }
    var wait = Math.max(0, last + (cfg.every || 0) * 1000 - Date.now());
    if (timer) { return; }
    timer = setTimeout(function () {
      timer = null;
      last = Date.now();
      if (current === cfg) { dc.set_props(cfg.refresh, { data: last }); }  // still on that page
    }, wait);
  }

  function onTick(m) {
    if (!current || !m || m.room !== room) { return; }
    var touched = (m.cases && m.cases.id && m.cases.id.length) || (m.gone && m.gone.length) ||
      (m.events && m.events.length) || (current.grids && m.grids && m.grids.code && m.grids.code.length);
    if (touched) { bump(current); }
  }

  function follow(cfg) {
    if (!window.io) { return; }
    if (!sock && cfg) {
      sock = window.io("/live", { transports: ["websocket"] });
      sock.on("tick", onTick);
      // a join (or a rejoin after a reconnect) is answered with the room's snapshot: whatever happened
      // between the page's render and the join is only in there, so refresh once from the server
      sock.on("snapshot", function (m) { if (current && m && m.room === room) { bump(current); } });
      sock.on("connect", function () { if (room) { sock.emit("join", { room: room }); } });
    }
    if (!sock) { return; }
    if (room && (!cfg || cfg.room !== room)) { sock.emit("leave", { room: room }); room = null; }
    current = cfg;
    if (cfg && cfg.room !== room) {
      room = cfg.room;
      if (sock.connected) { sock.emit("join", { room: room }); }
    }
  }

  // -- actions: a button with data-gw-action inside an element with data-gw-case posts the command to
  // POST /api/v1/commands (session cookie + the page's CSRF token); the answer goes to the page's
  // gw-act-result element (its data-gw-words hold the catalogue's texts). A repeated click repeats
  // the button's idempotency key (the server answers "duplicate"); after a refusal the next click
  // is a new command (a new key).
  function say(kind, text) {
    var out = document.getElementById("gw-act-result");
    if (!out) { return; }
    out.className = "gw-act-result gw-act-" + kind;
    out.textContent = text;
  }

  function field(box, selector) {
    var el = box ? box.querySelector(selector) : null;
    return el ? el.value : "";
  }

  // photos for a command (处置反馈): a file picker made here (Dash has no file input), the files kept
  // per case and action until the command is sent; the button says how many are picked
  var picked = {};
  document.addEventListener("click", function (ev) {
    var btn = ev.target && ev.target.closest ? ev.target.closest("button[data-gw-photos]") : null;
    if (!btn) { return; }
    var panel = btn.closest("[data-gw-case]");
    if (!panel) { return; }
    ev.preventDefault();
    var key = panel.getAttribute("data-gw-case") + "|" + btn.getAttribute("data-gw-photos");
    var input = document.createElement("input");
    input.type = "file";
    input.multiple = true;
    input.accept = "image/jpeg,image/png,image/webp";
    input.addEventListener("change", function () {
      picked[key] = Array.prototype.slice.call(input.files || [], 0, 10);
      btn.setAttribute("data-gw-count", String(picked[key].length));
      btn.textContent = btn.textContent.replace(/ \(\d+\)$/, "") + " (" + picked[key].length + ")";
    });
    btn.parentNode.appendChild(input);  // in the page (a test or a screen reader can reach it)
    input.hidden = true;
    input.click();
  });

  document.addEventListener("click", function (ev) {
    var btn = ev.target && ev.target.closest ? ev.target.closest("button[data-gw-action]") : null;
    if (!btn || btn.disabled) { return; }
    var panel = btn.closest("[data-gw-case]");
    if (!panel) { return; }
    ev.preventDefault();
    var out = document.getElementById("gw-act-result"), words = {};
    try { words = JSON.parse(out.getAttribute("data-gw-words")) || {}; } catch (e) { words = {}; }
    var box = btn.closest(".gw-act") || panel;
    var action = btn.getAttribute("data-gw-action");
    var body = { action: action, case_id: panel.getAttribute("data-gw-case"),
                 id: btn.getAttribute("data-gw-key") + "-" + (btn.getAttribute("data-gw-try") || "0") };
    var page = panel.closest(".gw-page") || document;
    var opinion = field(panel, "[name=opinion]") || field(page, "[name=opinion]");
    if (opinion) { body.opinion = opinion; }
    var dept = field(box, "select[name=department]");
    if (dept) { body.department = dept; }
    var extra = field(box, "input[name=extra]");
    if (extra) { body.extra = extra; }
    var lon = field(box, "input[name=lon]"), lat = field(box, "input[name=lat]");  // 定位 at a point
    if (lon === "" && lat === "" && picked_point && box.querySelector("input[name=lon]")) {
      lon = String(picked_point[0]); lat = String(picked_point[1]);  // clicked on the 待定位 map
    }
    if (lon !== "" || lat !== "") { body.lon = Number(lon); body.lat = Number(lat); }
    var special = box.querySelector(".gw-act-check input[type=checkbox]");
    if (special && special.checked) { body.special = true; }
    var fixed = btn.getAttribute("data-gw-data");  // a variant's own data (差错结案, refusing a 自处置)
    if (fixed) {
      try { var d = JSON.parse(fixed); for (var k in d) { body[k] = d[k]; } } catch (e) { /* none */ }
    }
    var assignee = btn.getAttribute("data-gw-assignee");
    if (assignee) { body.assignee = assignee; }
    var csrf = document.querySelector("input[name=csrf]");
    var label = btn.textContent;
    btn.disabled = true;
    say("sending", label + " · " + words.sending);
    // photos picked for the command (a department's 处置反馈): uploaded first, their refs go with it
    var pickKey = body.case_id + "|" + action;
    var files = (picked[pickKey] || []).slice(0, 10);
    var token = csrf ? csrf.value : "";
    Promise.all(files.map(function (f) {
      var form = new FormData();
      form.append("kind", "after");
      form.append("file", f);
      return fetch("/api/v1/media", { method: "POST", credentials: "same-origin",
        headers: { "X-CSRF-Token": token }, body: form }).then(function (r) {
        return r.json().then(function (j) {
          if (!r.ok) { throw new Error((j && j.reason) || String(r.status)); }
          return j.ref;
        });
      });
    })).then(function (refs) {
      if (refs.length) { body.media = refs.join(","); }
      return fetch("/api/v1/commands", {
        method: "POST", credentials: "same-origin",
        headers: { "Content-Type": "application/json", "X-CSRF-Token": token },
        body: JSON.stringify(body)
      });
    }).then(function (r) {
      return r.json().then(function (j) { return { status: r.status, body: j }; });
    }).then(function (res) {
      btn.disabled = false;
      var j = res.body || {};
      if (res.status < 400 && j.accepted && j.accepted.length) {
        forget(body.case_id || "");
        say("done", label + " · " + words.done + " · " + (body.case_id || ""));
      } else if (res.status < 400 && j.duplicates && j.duplicates.length) {
        say("done", label + " · " + words.duplicate);
      } else {
        btn.setAttribute("data-gw-try", String(Number(btn.getAttribute("data-gw-try") || "0") + 1));
        var rule = j.error || String(res.status), why = (words.rules || {})[rule];
        say("refused", label + " · " + words.refused + ": " + (why ? why + " (" + rule + ")" : rule) +
            (j.message ? " — " + j.message : ""));
        return;
      }
      delete picked[pickKey];
      if (btn.getAttribute("data-gw-reload")) { window.location.reload(); return; }  // 交接班: show the new state
      if (action === "component_move") { picked_point = null; }  // moved: the rebuilt boxes start empty
      if (current) { last = 0; bump(current); }  // show the change now (the tick also will)
    }).catch(function (err) {
      btn.disabled = false;
      say("refused", label + " · " + words.failed + (err && err.message ? " (" + err.message + ")" : ""));
    });
  });

  // -- handsets (the supervisor page): pair a new phone by QR code, revoke a device token. The session's
  // CSRF token comes from /auth/session; the answer is shown in the gw-dev-result element.
  document.addEventListener("click", function (ev) {
    var btn = ev.target && ev.target.closest ? ev.target.closest("button[data-gw-device]") : null;
    if (!btn || btn.disabled) { return; }
    ev.preventDefault();
    var out = document.getElementById("gw-dev-result"), words = {};
    try { words = JSON.parse(out.getAttribute("data-gw-words")) || {}; } catch (e) { words = {}; }
    var what = btn.getAttribute("data-gw-device");
    var url = what === "pair" ? "/desk/api/devices/pair"
      : "/desk/api/devices/" + encodeURIComponent(btn.getAttribute("data-gw-token")) + "/revoke";
    var body = what === "pair" ? JSON.stringify({ person: btn.getAttribute("data-gw-person") }) : "{}";
    btn.disabled = true;
    fetch("/auth/session", { credentials: "same-origin" }).then(function (r) { return r.json(); })
      .then(function (me) {
        return fetch(url, { method: "POST", credentials: "same-origin", body: body,
          headers: { "Content-Type": "application/json", "X-CSRF-Token": me.csrf || "" } });
      }).then(function (r) {
        return r.json().then(function (j) { return { status: r.status, body: j }; });
      }).then(function (res) {
        btn.disabled = false;
        var j = res.body || {};
        out.replaceChildren();
        if (res.status >= 400) {
          out.textContent = (words.failed || "") + ": " + (j.error || res.status) + (j.message ? " — " + j.message : "");
          out.className = "gw-dev-result gw-act-refused";
          return;
        }
        out.className = "gw-dev-result gw-act-done";
        if (what === "pair") {
          var img = document.createElement("img");
          img.src = j.qr; img.alt = j.link; img.className = "gw-dev-qr";
          var p = document.createElement("p"); p.textContent = words.scan || "";
          var a = document.createElement("p"); a.className = "gw-dev-link";
          a.textContent = (words.link || "") + " " + j.link;
          out.append(p, img, a);
        } else {
          out.textContent = words.revoked || "";
          var li = btn.closest("li");
          if (li) { li.classList.add("gw-dev-off"); }
          btn.remove();
        }
      }).catch(function () {
        btn.disabled = false;
        out.textContent = words.failed || "";
      });
  });

  // -- drafts: what an operator types or picks (意见, 延期天数, the department to dispatch to, 特殊案件)
  // survives the page's live rebuilds. A tick that touches the case rebuilds the case body, which
  // would put an empty field — or a list back on its first department — under their fingers (a
  // dispatch then went to the wrong department: seen under load, tests/test_desk_browser.py); the
  // draft is kept per case and field and put back until a command of that case is accepted.
  var drafts = {};
  function draftKey(el) {
    var panel = el.closest ? el.closest("[data-gw-case]") : null;
    var name = el.name || (el.type === "checkbox" ? "checkbox" : "");  // dcc.Checklist's box has no name
    if (!panel || !name || name === "csrf") { return null; }
    var box = el.closest(".gw-act");
    return panel.getAttribute("data-gw-case") + "|" + (box ? box.className : "") + "|" + name;
  }
  function keep(ev) {
    var el = ev.target, key = el ? draftKey(el) : null;
    if (key) { drafts[key] = el.type === "checkbox" ? (el.checked ? "on" : "off") : el.value; }
  }
  document.addEventListener("input", keep);
  document.addEventListener("change", keep);
  function restore() {
    var fields = document.querySelectorAll(
      "[data-gw-case] textarea[name], [data-gw-case] input[name], [data-gw-case] select[name], " +
      "[data-gw-case] input[type=checkbox]"
    );
    for (var i = 0; i < fields.length; i++) {
      var el = fields[i], key = draftKey(el), d = key ? drafts[key] : undefined;
      if (d === undefined || d === "") { continue; }
      if (el.type === "checkbox") {
        if (el.checked !== (d === "on")) { el.checked = d === "on"; }
      } else if (el.tagName === "SELECT") {  // a rebuilt list starts on its first option: pick it again
        if (el.value !== d && el.querySelector("option[value='" + d.replace(/'/g, "") + "']")) { el.value = d; }
      } else if (!el.value) {
        el.value = d;
      }
    }
    // the photos picked for a command: a rebuilt button says again how many wait (the files are kept)
    var pickers = document.querySelectorAll("[data-gw-case] button[data-gw-photos]:not([data-gw-count])");
    for (var j = 0; j < pickers.length; j++) {
      var btn = pickers[j], panel = btn.closest("[data-gw-case]");
      var files = picked[panel.getAttribute("data-gw-case") + "|" + btn.getAttribute("data-gw-photos")];
      if (files && files.length) {
        btn.setAttribute("data-gw-count", String(files.length));
        btn.textContent = btn.textContent + " (" + files.length + ")";
      }
    }
  }
  function forget(caseId) {
    for (var k in drafts) { if (k.indexOf(caseId + "|") === 0) { delete drafts[k]; } }
  }
  if (window.MutationObserver && document.body) {
    new MutationObserver(restore).observe(document.body, { childList: true, subtree: true });
  }

  setInterval(function () {
    var el = document.querySelector("div.gw-live-config");
    var text = el ? el.textContent : null;
    if (text === seen) { return; }
    seen = text;
    var cfg = null;
    try { cfg = text ? JSON.parse(text) : null; } catch (e) { cfg = null; }
    follow(cfg);
  }, 500);

  // -- the 待定位 map (/desk/locate): a click on the map puts its point (WGS-84, 7 decimals) into every
  // point box of the page and moves the map's "picked" marker there; 按坐标定位 on a case sends it
  var picked_point = null;
  function fillPoint() {
    if (!picked_point) { return; }
    document.querySelectorAll(".gw-locate-page input[name=lon]").forEach(function (el) { el.value = picked_point[0]; });
    document.querySelectorAll(".gw-locate-page input[name=lat]").forEach(function (el) { el.value = picked_point[1]; });
    // the component page (issue 18): a click on its map fills the move's point boxes (移动 sends it)
    document.querySelectorAll("#gw-component-update input[name=lon]").forEach(function (el) { el.value = picked_point[0]; });
    document.querySelectorAll("#gw-component-update input[name=lat]").forEach(function (el) { el.value = picked_point[1]; });
  }
  function watchLocateMap() {
    var gd = document.querySelector("#gw-locate-map .js-plotly-plot") ||
      (document.getElementById("gw-component-update") && document.querySelector("#gw-component-map .js-plotly-plot"));
    var map = gd && gd._fullLayout && gd._fullLayout.map && gd._fullLayout.map._subplot && gd._fullLayout.map._subplot.map;
    if (!map || map.__gwPick) { return; }
    map.__gwPick = true;
    map.on("click", function (e) {
      picked_point = [Math.round(e.lngLat.lng * 1e7) / 1e7, Math.round(e.lngLat.lat * 1e7) / 1e7];
      fillPoint();
      var i = gd.data.findIndex(function (tr) { return tr.uid === "picked"; });
      if (i >= 0 && window.Plotly) { window.Plotly.restyle(gd, { lon: [[picked_point[0]]], lat: [[picked_point[1]]] }, [i]); }
    });
  }
  // the page's list is rebuilt on live ticks (its boxes come back empty) and the map appears late
  new MutationObserver(function () { watchLocateMap(); fillPoint(); })
    .observe(document.documentElement, { childList: true, subtree: true });
})();
