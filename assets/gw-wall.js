/* GridWall wall client: applies /live snapshots and ticks in the browser (no Dash round trip).
 *
 * Reads element ids, texts, colours and orders from the JSON config element that layouts/wall.py
 * renders; holds the live state (supervisors, open cases, KPIs, stages, events); checks `seq` and
 * asks for a `resync` on a gap; draws supervisors and cases over the map (gw-marks.js) on every tick.
 * The socket and the panels start as soon as the config is there; the map joins once Plotly has
 * drawn the graph (plotly.js is several MB: the KPI tiles do not wait for it).
 */
(function () {
  "use strict";
  var started = false;

  function boot() {
    // the config element is found by its attribute; every element id comes from it (dashboard/ids.py)
    var cfgEl = document.querySelector("div[data-config]");
    var cfg = cfgEl && JSON.parse(cfgEl.getAttribute("data-config"));
    if (!cfg || !window.io) { return false; }
    if (started) { return true; }
    started = true;
    start(cfg);
    return true;
  }

  function start(cfg) {
    var graph = null;  // the Plotly map, once Dash and plotly.js have drawn it
    var ids = cfg.ids, T = cfg.texts;
    var el = function (id) { return document.getElementById(id); };
    var state = { sup: {}, cases: {}, kpi: null, stages: null, events: [], seq: -1, lastTick: 0, sim: false,
                  hours: null, ranking: null, stats: null };
    var dirtyMap = true;
    var dirtyCases = true;  // the case marks change only with cases (and with time: overdue, pulse)
    var casesAt = 0;  // when the case marks were last rebuilt
    var alertUntil = 0;
    // Timing for benchmarks (performance.now(), ms since navigation start); read-only, no effect on
    // behaviour: per tick its arrival, the end of the panel update, the end of the map drawing, its
    // cost, and the next animation frame after it (the frame that shows it).
    var perf = window.__gw = { ticks: 0, gaps: 0, applied: [], snapshot: null, panels: null, map: null };
    var perfWaiting = [], panelsAt = 0;

    function merge(cols, into, key) {
      if (!cols || !cols[key]) { return; }
      var names = Object.keys(cols);
      for (var i = 0; i < cols[key].length; i++) {
        var row = {};
        for (var j = 0; j < names.length; j++) { row[names[j]] = cols[names[j]][i]; }
        into[cols[key][i]] = row;
      }
    }

    function apply(msg, full) {
      if (full) { state.sup = {}; state.cases = {}; state.events = []; }
      merge(msg.sup, state.sup, "id");
      merge(msg.cases, state.cases, "id");
      (msg.gone || []).forEach(function (id) { delete state.cases[id]; });
      if (full || (msg.cases && msg.cases.id && msg.cases.id.length) || (msg.gone && msg.gone.length)) { dirtyCases = true; }
      if (msg.kpi) { state.kpi = msg.kpi; }
      if (msg.stages) { state.stages = msg.stages; }
      if (msg.hours) { state.hours = msg.hours; }
      if (msg.ranking) { state.ranking = msg.ranking; }
      if (msg.stats) { state.stats = msg.stats; }
      state.events = state.events.concat(msg.events || []).slice(-20);
      state.seq = msg.seq;
      state.lastTick = Date.now();
      state.sim = !!msg.sim;
      dirtyMap = true;
      renderPanels();
      panelsAt = performance.now();
      renderMap();  // drawn at once (the marks canvas; see renderMap)
      if (full && perf.panels === null && state.kpi) { perf.panels = performance.now(); perf.panelsFrom = "snapshot"; }
    }

    function fmtKpi(key, v) {
      if (v === null || v === undefined) { return "–"; }
      // a rate over 100 % (more closed today than reported today) needs no tenth: 114%, not 114.3%
      if (key.slice(-5) === "_rate") { return (v * 100).toFixed(v >= 0.9995 ? 0 : 1) + "%"; }
      if (key === "avg_close_h") { return v.toFixed(1); }
      return Number(v).toLocaleString();
    }

    function fmtLeft(seconds) {
      var s = Math.abs(Math.round(seconds));
      var h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60);
      var text = h > 0 ? h + "h" + String(m).padStart(2, "0") : m + ":" + String(s % 60).padStart(2, "0");
      return seconds < 0 ? T["wall.overdue"] + " " + text : text;
    }

    function renderPanels() {
      if (state.kpi) {
        cfg.kpis.forEach(function (k) {
          var e = el(ids.WALL_KPIS + "-" + k);
          if (!e) { return; }
          var text = fmtKpi(k, state.kpi[k]);
          if (e.textContent !== text) { e.textContent = text; fitKpi(e); }
        });
      }
      if (state.stages) {
        cfg.stages.forEach(function (s, i) { var e = el(ids.WALL_STAGES + "-" + i); if (e) { e.textContent = state.stages[s]; } });
      }
      el(ids.WALL_SIM).hidden = !state.sim;
      var last = state.events[state.events.length - 1];
      if (last) {
        var when = new Date(last.at * 1000).toLocaleTimeString(cfg.lang === "zh" ? "zh-CN" : "en-GB", { timeZone: cfg.tz, hour12: false });
        el(ids.WALL_TICKER).textContent = when + "  " + (T["action." + last.action] || last.action) + "  " +
          (last["class"] || "") + "  " + last.case + (last.stage ? "  → " + (T["stage." + last.stage] || last.stage) : "");
      }
      renderQueue();
      renderRanking();
      renderHours();
      renderStats();
      renderHandover();
    }

    function renderHandover() {  // the status line: the last 交班 and its 接班确认 (issue 21 part 4)
      var e = el(ids.WALL_HANDOVER);
      if (!e || !state.stats) { return; }
      var h = state.stats.handover, text, cls;
      var fmt = function (iso) {
        return new Date(iso).toLocaleString(cfg.lang === "zh" ? "zh-CN" : "en-GB", { timeZone: cfg.tz,
          hour12: false, month: "2-digit", day: "2-digit", hour: "2-digit", minute: "2-digit" });
      };
      if (!h) { text = T["wall.handover.none"]; cls = "gw-ho-line gw-ho-none"; }
      else if (h.ack_at) { text = T["wall.handover.acked"] + " " + fmt(h.ack_at) + " " + h.ack_by; cls = "gw-ho-line gw-ho-ok"; }
      else { text = T["wall.handover.pending"] + " · " + T["wall.handover.out"] + " " + fmt(h.at) + " " + h.by; cls = "gw-ho-line gw-ho-wait"; }
      if (e.textContent !== text) { e.textContent = text; }
      if (e.className !== cls) { e.className = cls; }
      e.hidden = false;
    }

    function rankRow(r, i, names) {
      var li = document.createElement("li"); li.className = "gw-rank-row";
      var n = document.createElement("span"); n.className = "gw-rank-n"; n.textContent = String(i + 1);
      var name = document.createElement("span"); name.className = "gw-rank-name"; name.textContent = (names || cfg.streets)[r.code] || r.code;
      var sc = document.createElement("span"); sc.className = "gw-rank-score"; sc.textContent = r.score === null ? "–" : r.score.toFixed(1);
      var g = document.createElement("span"); g.className = "gw-rank-grade"; g.textContent = r.grade || "–";
      g.style.background = r.colour || "#444";
      li.appendChild(n); li.appendChild(name); li.appendChild(sc); li.appendChild(g);
      return li;
    }

    var boardKind = "evaluation";  // the scene the board shows: evaluation (streets), departments, problems
    function renderBoard() {  // the evaluation scenes over the map: every street or department, or 高发问题
      var board = el(ids.WALL_BOARD);
      if (!board || board.hidden) { return; }
      board.textContent = "";
      board.className = "gw-board" + (boardKind === "problems" ? " gw-board-problems" : "");
      if (boardKind === "evaluation" && state.ranking) {
        state.ranking.forEach(function (r, i) { board.appendChild(rankRow(r, i)); });
      } else if (boardKind === "departments" && state.stats) {
        state.stats.departments.forEach(function (r, i) { board.appendChild(rankRow(r, i, cfg.departments)); });
      } else if (boardKind === "recurring" && state.stats) {
        fillRecurring(board);
      } else if (boardKind === "problems" && state.stats) {
        var mix = document.createElement("li"); mix.className = "gw-board-block";
        fillMix(mix, state.stats.today, 8, T["wall.mix"]); board.appendChild(mix);
        var top = document.createElement("li"); top.className = "gw-board-block";
        fillTop(top); board.appendChild(top);
      }
    }

    function fillRecurring(board) {  // 重复发案部件: the objects with most cases in the window, their class names
      var rec = state.stats.recurring || { top: [], total: 0, min: 0, days: 0 };
      board.className = "gw-board gw-board-recurring";
      var head = document.createElement("li"); head.className = "gw-board-block gw-top-head gw-rec-head";
      head.textContent = (T["wall.recurring.rule"] || "").replace("{days}", rec.days).replace("{min}", rec.min)
        .replace("{n}", Number(rec.total).toLocaleString());
      board.appendChild(head);
      if (!rec.top.length) {
        var none = document.createElement("li"); none.className = "gw-dim gw-rec-none"; none.textContent = T["wall.recurring.none"];
        board.appendChild(none); return;
      }
      rec.top.forEach(function (r, i) {
        var li = document.createElement("li"); li.className = "gw-rank-row gw-rec-row";
        var n = document.createElement("span"); n.className = "gw-rank-n"; n.textContent = String(i + 1);
        var name = document.createElement("span"); name.className = "gw-rank-name"; name.textContent = className(r.key);
        var id = document.createElement("span"); id.className = "gw-rec-id"; id.textContent = "…" + String(r.id).slice(-6);
        var c = document.createElement("span"); c.className = "gw-rank-score gw-rec-n"; c.textContent = String(r.n);
        li.appendChild(n); li.appendChild(name); li.appendChild(id); li.appendChild(c);
        board.appendChild(li);
      });
    }

    // how many rows of a list fit its box, whole rows only (the box's height is the layout's: 16:9 and
    // 32:9 walls give the queue and the ranking different room); ``max`` when it cannot be measured yet
    // a KPI value wider than its tile (114.3% when more closed today than were reported) is drawn
    // smaller, never cut; measured as ratios, so it holds under the 4K walls' CSS zoom
    function fitKpi(e) {
      e.style.fontSize = "";
      var tile = e.parentElement, r = e.getBoundingClientRect(), box = tile.getBoundingClientRect();
      var room = box.width - 8;
      if (r.width > room && r.width > 0) {  // px of its own size: a % would be of the tile's
        var px = parseFloat(window.getComputedStyle(e).fontSize);
        e.style.fontSize = (px * Math.max(0.5, room / r.width)).toFixed(1) + "px";
      }
    }

    function rowsThatFit(list, max) {
      // both heights from getBoundingClientRect: under the 4K walls' CSS zoom clientHeight is not in its space
      var row = list.firstElementChild, h = row ? row.getBoundingClientRect().height : 0;
      if (!h || !list.clientHeight || list.scrollHeight <= list.clientHeight + 1) { return max; }
      return Math.max(1, Math.min(max, Math.floor((list.getBoundingClientRect().height + 0.5) / h)));
    }

    function fillList(list, rows, names, n) {  // the best and the worst when not all fit
      list.textContent = "";
      n = n || cfg.rankRows;
      var shown = [];
      rows.forEach(function (r, i) {
        if (rows.length <= n || i < n - Math.floor(n / 2) || i >= rows.length - Math.floor(n / 2)) { shown.push([r, i]); }
      });
      shown.forEach(function (pair) { list.appendChild(rankRow(pair[0], pair[1], names)); });
      var fit = rowsThatFit(list, shown.length);
      if (fit < shown.length) { fillList(list, rows, names, fit); }  // a 16:9 wall's box holds fewer
    }

    function renderRanking() {
      renderBoard();
      var list = el(ids.WALL_RANKING);
      if (!list || !state.ranking) { return; }
      fillList(list, state.ranking);
    }

    function className(key) { return (cfg.classes || {})[key] || key.split(":").pop(); }

    function bar(label, n, total, colour) {  // one labelled share: name, a bar, the count
      var row = document.createElement("div"); row.className = "gw-bar";
      var a = document.createElement("span"); a.className = "gw-bar-name"; a.textContent = label;
      var b = document.createElement("span"); b.className = "gw-bar-track";
      var f = document.createElement("i"); f.style.width = (total ? 100 * n / total : 0) + "%";
      if (colour) { f.style.background = colour; }
      b.appendChild(f);
      var c = document.createElement("span"); c.className = "gw-bar-n"; c.textContent = Number(n).toLocaleString();
      row.appendChild(a); row.appendChild(b); row.appendChild(c);
      return row;
    }

    function fillMix(box, period, sources, head) {  // 部件/事件 and the first ``sources`` sources of the period's reports
      box.textContent = "";
      if (head) { var h = document.createElement("div"); h.className = "gw-top-head"; h.textContent = head; box.appendChild(h); }
      if (!period || !period.reports) {
        var none = document.createElement("div"); none.className = "gw-dim"; none.textContent = T["wall.mix.none"];
        box.appendChild(none); return;
      }
      ["event", "component"].forEach(function (k) {
        box.appendChild(bar(T["kind." + k] || k, period.kinds[k] || 0, period.reports, k === "event" ? "#4cc2ff" : "#d2a8ff"));
      });
      Object.keys(period.sources).slice(0, sources).forEach(function (s) {
        box.appendChild(bar(T["source." + s] || s, period.sources[s], period.reports, "#7ee787"));
      });
    }

    function fillTop(box) {  // 高发问题: today's and this month's most reported classes
      box.textContent = "";
      ["today", "month"].forEach(function (p) {
        var col = document.createElement("div"); col.className = "gw-top-col";
        var h = document.createElement("div"); h.className = "gw-top-head"; h.textContent = T["wall.top." + p];
        col.appendChild(h);
        var rows = (state.stats[p] || {}).top || [], most = rows.length ? rows[0].n : 1;
        rows.forEach(function (r) { col.appendChild(bar(className(r.key), r.n, most, "#ffa657")); });
        box.appendChild(col);
      });
    }

    function renderStats() {
      if (!state.stats) { return; }
      var depts = el(ids.WALL_DEPTS), mix = el(ids.WALL_MIX), top = el(ids.WALL_TOP);
      if (depts) { fillList(depts, state.stats.departments || [], cfg.departments); }
      if (mix) { fillMix(mix, state.stats.today, 4); }  // the side: the four largest sources
      if (top) { fillTop(top); }
    }

    function renderHours() {
      var box = el(ids.WALL_HOURS);
      if (!box || !state.hours) { return; }
      var rep = state.hours.reported, clo = state.hours.closed;
      var top = Math.max(1, Math.max.apply(null, rep.concat(clo)));
      if (box.children.length !== 24) {
        box.textContent = "";
        for (var h = 0; h < 24; h++) {
          var col = document.createElement("div"); col.className = "gw-hour";
          var a = document.createElement("i"); a.className = "gw-hour-rep";
          var b = document.createElement("i"); b.className = "gw-hour-clo";
          col.appendChild(a); col.appendChild(b); box.appendChild(col);
        }
      }
      for (var k = 0; k < 24; k++) {
        box.children[k].children[0].style.height = (100 * rep[k] / top) + "%";
        box.children[k].children[1].style.height = (100 * clo[k] / top) + "%";
      }
    }

    function renderQueue() {
      var now = Date.now() / 1000;
      // ordered by what falls due first: the stage's deadline or the reply to an open 督办单
      function due(c) { return c.urge_due !== null && c.urge_due !== undefined && (c.deadline === null || c.urge_due < c.deadline) ? c.urge_due : c.deadline; }
      var open = Object.keys(state.cases).map(function (k) { return state.cases[k]; })
        .filter(function (c) { return due(c) !== null; })
        .sort(function (a, b) { return due(a) - due(b); }).slice(0, cfg.queueRows);
      var list = el(ids.WALL_QUEUE);
      list.textContent = "";
      if (!open.length) {
        var li0 = document.createElement("li"); li0.className = "gw-queue-empty"; li0.textContent = T["wall.queue.empty"];
        list.appendChild(li0); return;
      }
      open.forEach(function (c) {
        var li = document.createElement("li");
        var left = c.deadline === null ? Infinity : c.deadline - now;
        li.className = "gw-queue-row" + (left < 0 ? " gw-late" : left < 1800 ? " gw-soon" : "") + (now - c.reported < 60 ? " gw-new" : "");
        var t1 = document.createElement("span"); t1.className = "gw-queue-left"; t1.textContent = c.deadline === null ? "–" : fmtLeft(left);
        var t2 = document.createElement("span"); t2.className = "gw-queue-stage";
        t2.textContent = T["stage.short." + c.stage] || T["stage." + c.stage] || c.stage;  // 待二级派遣 → 二级派遣
        t2.style.color = cfg.stageColours[c.stage] || "";
        // the class and the place in words (the case id only where the row has room for it)
        var what = (cfg.classes || {})[c.kind + ":" + c["class"]] || c["class"] || "";
        var t3 = document.createElement("span"); t3.className = "gw-queue-where";
        var w1 = document.createElement("b"); w1.className = "gw-queue-class"; w1.textContent = what;
        // the street short: without "街道" and the generated areas' "（生成）" (the wall says they are generated)
        var street = (cfg.streets[c.street] || "").replace(/（生成）$/, "").replace(/街道$/, "");
        var w2 = document.createElement("span"); w2.className = "gw-queue-street"; w2.textContent = street;
        var w3 = document.createElement("span"); w3.className = "gw-queue-id"; w3.textContent = c.id;
        if (c.urge_due !== null && c.urge_due !== undefined) {  // an open 督办单, red once its reply is late
          var late = c.urge_due < now, w0 = document.createElement("span");
          w0.className = "gw-queue-urge" + (late ? " gw-urge-late" : "");
          w0.textContent = T[late ? "wall.queue.urge_late" : "wall.queue.urge"];
          t3.appendChild(w0);
        }
        t3.appendChild(w1); t3.appendChild(w2); t3.appendChild(w3);
        li.appendChild(t1); li.appendChild(t2); li.appendChild(t3);
        list.appendChild(li);
      });
      var fit = rowsThatFit(list, open.length);  // the most urgent rows that fit, none cut in half
      while (list.children.length > fit) { list.removeChild(list.lastElementChild); }
      // a class name too long for its row even with the street gone (户外广告设置位置不合理 beside a 督办
      // badge at 16:9) is drawn smaller, never cut: the ratio holds under the 4K walls' CSS zoom
      Array.prototype.forEach.call(list.querySelectorAll(".gw-queue-class"), function (el) {
        var box = el.parentElement.getBoundingClientRect(), r = el.getBoundingClientRect();
        if (r.width > 0 && r.right > box.right) {
          // down to 22 px on a 16:9 wall (the bar for reading from 5 m); the 32:9 walls' queue column
          // is narrower: down to 18 px there
          var floor = window.innerWidth / window.innerHeight >= 3 ? 18 : 22;
          var px = parseFloat(window.getComputedStyle(el).fontSize);
          el.style.fontSize = Math.max(floor, px * (box.right - r.left - 1) / r.width).toFixed(1) + "px";
        }
      });
    }

    function mapObj() {  // the MapLibre map under the Plotly graph, once both are there
      if (!graph) {
        var box = document.getElementById(ids.WALL_MAP);
        graph = (window.Plotly && box && box.querySelector(".js-plotly-plot")) || null;
        if (!graph) { return null; }
      }
      var fl = graph._fullLayout, sub = fl && fl.map && fl.map._subplot;
      return (sub && sub.map) || null;
    }

    function mapReady() {  // a view change before MapLibre has its style logs "Style is not done loading"
      var ml = mapObj();
      if (!ml || !ml.style) { return false; }
      // the style document itself; isStyleLoaded() also waits for every source (the heat image while
      // it reloads every 10 s), which would stall view changes on a busy machine
      if (typeof ml.style._loaded === "boolean") { return ml.style._loaded; }
      return !!(ml.isStyleLoaded && ml.isStyleLoaded());
    }

    // Supervisors, open cases and new-case pulses are drawn by assets/gw-marks.js on a canvas over
    // the map (restyling map traces repainted the whole map in software GL on every tick). A tick
    // redraws it at once; cases are rebuilt when they change and every 10 s for what time changes
    // (the overdue colour, the pulse).
    var marks = null, showCases = true;

    function renderMap() {
      var ml = mapObj();
      if (!dirtyMap || !ml || !window.GwMarks) { return; }
      if (!marks) { marks = perf.marks = new window.GwMarks(ml); marks.show("cases", showCases); } else { marks.attach(ml); }
      dirtyMap = false;
      var now = Date.now() / 1000, t0 = performance.now();
      if (dirtyCases || Date.now() - casesAt > 10000) {
        dirtyCases = false;
        casesAt = Date.now();
        var c = Object.keys(state.cases).map(function (k) { return state.cases[k]; }).filter(function (r) { return r.lon !== null; });
        var fresh = c.filter(function (r) { return now - r.reported < 60; });
        marks.set("cases", c.map(function (r) { return r.lon; }), c.map(function (r) { return r.lat; }),
          c.map(function (r) { return r.deadline !== null && r.deadline < now ? cfg.overdueColour : (cfg.stageColours[r.stage] || "#ccc"); }),
          0.95, 5.5, 0);
        marks.set("pulse", fresh.map(function (r) { return r.lon; }), fresh.map(function (r) { return r.lat; }),
          cfg.overdueColour, 0.55, 17, 3, "pulse");
        marks.show("cases", showCases);
      }
      var s = Object.keys(state.sup).map(function (k) { return state.sup[k]; }).filter(function (r) { return r.lon !== null; });
      marks.set("supervisors", s.map(function (r) { return r.lon; }), s.map(function (r) { return r.lat; }),
        s.map(function (r) { return cfg.statusColours[r.status] || "#888"; }),
        s.map(function (r) { return r.status === "offline" ? 0.3 : 1.0; }), 4.5, 2);
      marks.draw();
      var t = performance.now(), waiting = perfWaiting;
      perfWaiting = [];
      if (perf.map === null && s.length > 0) { perf.map = t; }
      waiting.forEach(function (r) { r.map = t - r.arrive; r.draw = t - t0; });
      // the frame that shows it: the next animation frame (a hidden page gets none)
      window.requestAnimationFrame(function () {
        var f = performance.now();
        waiting.forEach(function (r) { r.frame = f - r.arrive; });
      });
    }

    var heatAt = 0;
    function refreshHeat() {  // swap the heat image every 10 s; the server renders it
      if (!mapReady() || Date.now() - heatAt < 10000) { return; }
      if (!state.lastTick || Date.now() - state.lastTick > cfg.staleAfter * 1000) { return; }  // server away
      var layers = graph.layout && graph.layout.map && graph.layout.map.layers;
      if (!layers || !layers.length || String(layers[0].source).indexOf("/heat/") < 0) { return; }
      heatAt = Date.now();
      // the same URL: the server answers no-cache + ETag, so an unchanged image costs a 304
      var url = String(layers[0].source);
      // Straight to MapLibre's image source: a Plotly relayout of the layer would reload the whole map
      // style and stall the marker updates for seconds (python -m bench wall).
      var ml = mapObj(), style = ml.getStyle(), done = false;
      Object.keys((style && style.sources) || {}).forEach(function (id) {
        var src = ml.getSource(id);
        if (!done && src && src.type === "image" && String(src.url || "").indexOf("/heat/") >= 0) {
          src.updateImage({ url: url, coordinates: src.coordinates });
          done = true;
        }
      });
      if (!done) { window.Plotly.relayout(graph, { "map.layers[0].source": url }); }
    }

    // Scenes: an optional playlist (?scenes=overview,streets,supervisors&dwell=20), paused by take-overs.
    var steps = [];
    (cfg.scenes || []).forEach(function (name) {
      if (name === "streets") { Object.keys(cfg.boxes).sort().forEach(function (c) { steps.push(["street", c]); }); }
      else { steps.push([name, null]); }
    });
    var stepAt = 0, stepIndex = -1, baseView = null;

    function fit(box) {  // centre and zoom that fit a lon/lat box into the map's size
      var w = graph.clientWidth || 1000, h = graph.clientHeight || 800;
      var my = function (lat) { return Math.log(Math.tan(Math.PI / 4 + lat * Math.PI / 360)); };
      var zx = Math.log2(w / 512 / Math.max((box[2] - box[0]) / 360, 1e-6));
      var zy = Math.log2(h / 512 / Math.max((my(box[3]) - my(box[1])) / (2 * Math.PI), 1e-9));
      return { lon: (box[0] + box[2]) / 2, lat: (box[1] + box[3]) / 2, zoom: Math.min(zx, zy) - 0.3 };
    }

    function showScene() {
      if (!steps.length || alertUntil || !mapReady() || Date.now() - stepAt < cfg.dwell * 1000) { return; }
      stepAt = Date.now();
      stepIndex = (stepIndex + 1) % steps.length;
      var step = steps[stepIndex], m = graph.layout.map;
      if (!baseView) { baseView = { lon: m.center.lon, lat: m.center.lat, zoom: m.zoom }; }
      var view = baseView, title = T["scene." + step[0]] || "";
      if (step[0] === "street") { view = fit(cfg.boxes[step[1]]); title = cfg.streets[step[1]] || step[1]; }
      wantView = view;
      applyView();
      showCases = step[0] !== "supervisors";
      if (marks) { marks.show("cases", showCases); }
      var s = el(ids.WALL_SCENE); s.textContent = title; s.hidden = !title;
      boardKind = step[0];
      el(ids.WALL_BOARD).hidden = ["evaluation", "departments", "problems", "recurring"].indexOf(step[0]) < 0;
      renderBoard();
    }

    function tickClock() {
      var now = new Date();
      el(ids.WALL_CLOCK).textContent = now.toLocaleString(cfg.lang === "zh" ? "zh-CN" : "en-GB",
        { timeZone: cfg.tz, hour12: false, year: "numeric", month: "2-digit", day: "2-digit", hour: "2-digit", minute: "2-digit", second: "2-digit" });
      var h = el(ids.WALL_HEALTH);
      var stale = !state.lastTick || Date.now() - state.lastTick > cfg.staleAfter * 1000;
      h.textContent = state.lastTick ? (stale ? T["wall.stale"] : T["wall.live"]) : T["wall.connecting"];
      h.className = "gw-health " + (state.lastTick ? (stale ? "gw-health-stale" : "gw-health-ok") : "gw-health-wait");
      if (alertUntil && Date.now() > alertUntil) { endTakeOver(); }
      renderQueue();
      applyView();
      renderMap();
      refreshHeat();
      showScene();
    }

    var token = new URLSearchParams(window.location.search).get("token");
    var socket = window.io("/live", { auth: token ? { token: token } : {}, transports: ["websocket"] });
    socket.on("snapshot", function (msg) {
      if (msg.room !== "wall") { return; }
      if (perf.snapshot === null) { perf.snapshot = performance.now(); }
      apply(msg, true);
    });
    socket.on("tick", function (msg) {
      if (msg.room !== "wall") { return; }
      var arrive = performance.now();
      perf.ticks++;
      if (state.seq >= 0 && msg.seq !== state.seq + 1) { perf.gaps++; socket.emit("resync", { room: "wall" }); return; }
      var r = { seq: msg.seq, arrive: arrive, panels: null, map: null };
      perf.applied.push(r);
      perfWaiting.push(r);  // the map drawing in apply() fills in r.map
      if (perf.applied.length > 2000) { perf.applied.shift(); }
      apply(msg, false);
      r.panels = panelsAt - arrive;
    });
    socket.on("alert", function (msg) {
      if (msg.room !== "wall") { return; }
      if (state.seq >= 0 && msg.seq !== state.seq + 1) { socket.emit("resync", { room: "wall" }); return; }
      state.seq = msg.seq;
      if (msg.kind === "emergency") { takeOver(msg); }
    });

    function metres(lon1, lat1, lon2, lat2) {
      var k = Math.PI / 180, x = (lon2 - lon1) * k * Math.cos((lat1 + lat2) / 2 * k), y = (lat2 - lat1) * k;
      return Math.sqrt(x * x + y * y) * 6371000;
    }

    var home = null;  // the map view to return to after a take-over
    function takeOver(msg) {  // 突发事件: banner, zoom to the spot, the nearest supervisors on duty
      var a = el(ids.WALL_ALERT);
      var near = [];
      if (msg.lon !== null && msg.lat !== null) {
        near = Object.keys(state.sup).map(function (k) { return state.sup[k]; })
          .filter(function (s) { return s.lon !== null && s.status !== "offline"; })
          .map(function (s) { return [metres(msg.lon, msg.lat, s.lon, s.lat), s.id]; })
          .sort(function (x, y) { return x[0] - y[0]; }).slice(0, 3);
      }
      a.textContent = "";
      var head = document.createElement("div"); head.className = "gw-alert-head";
      head.textContent = T["wall.alert.emergency"] + "  " + (msg.text || "") + "  " + (msg.case || "");
      a.appendChild(head);
      if (near.length) {
        var list = document.createElement("div"); list.className = "gw-alert-near";
        list.textContent = T["wall.alert.nearest"] + "  " + near.map(function (n) { return n[1] + " " + Math.round(n[0]) + " m"; }).join("  ·  ");
        a.appendChild(list);
      }
      a.hidden = false;
      alertUntil = Date.now() + cfg.alertSeconds * 1000;
      if (msg.lon !== null && msg.lat !== null && mapReady()) {
        var m = graph.layout.map;
        if (!home) { home = { lon: m.center.lon, lat: m.center.lat, zoom: m.zoom }; }
        wantView = { lon: msg.lon, lat: msg.lat, zoom: 16 };
        applyView();
      }
    }

    var wantView = null;  // a view change waiting for the map (MapLibre reloads its style after relayouts)
    function applyView() {
      if (!wantView || !mapReady()) { return; }
      var v = wantView; wantView = null;
      window.Plotly.relayout(graph, { "map.center.lon": v.lon, "map.center.lat": v.lat, "map.zoom": v.zoom });
    }

    function endTakeOver() {
      el(ids.WALL_ALERT).hidden = true;
      alertUntil = 0;
      if (home) { wantView = home; applyView(); }
      home = null;
    }
    if (cfg.initial) {  // the panels as the page was built; the snapshot replaces them (seq stays -1)
      var init = cfg.initial;
      merge(init.cases, state.cases, "id");
      state.kpi = init.kpi; state.stages = init.stages; state.hours = init.hours; state.ranking = init.ranking;
      state.stats = init.stats || null;
      state.events = init.events || []; state.sim = !!init.sim;
      renderPanels();
      if (state.kpi) { perf.panels = performance.now(); perf.panelsFrom = "page"; }
    }
    setInterval(tickClock, 1000);
    setInterval(renderMap, 100);  // a redraw held back while the map loads
    tickClock();
  }

  if (!boot()) {
    var timer = setInterval(function () { if (boot()) { clearInterval(timer); } }, 200);
  }
})();
