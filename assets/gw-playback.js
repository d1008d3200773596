/* GridWall supervisor page: track playback in the browser, and the live position from /live.
 *
 * Reads the JSON config element that layouts/supervisor.py renders (element ids, texts, speeds and
 * today's track as epoch seconds, lon, lat). Playback runs on a virtual clock: play/pause, a
 * scrubber over the day, speeds 1×–60×; it moves the map's "play" marker with Plotly.restyle
 * about ten times a second, with no server round trip. Gaps longer than cfg.skipGap seconds (the
 * handset was off) are jumped over. The page also joins room supervisor:<id> on /live (when the
 * session allows it) and moves the "live" marker and the status badge with each tick.
 * window.__gwPlayback exposes the playback state (read-only, for tests).
 */
(function () {
  "use strict";
  var started = false;

  function boot() {
    var cfgEl = document.querySelector("div[data-sup-config]");
    if (!cfgEl) { started = false; return false; }
    var cfg = JSON.parse(cfgEl.getAttribute("data-sup-config"));
    if (started === cfg.id) { return true; }
    started = cfg.id;
    start(cfg);
    return true;
  }

  function start(cfg) {
    var ids = cfg.ids, T = cfg.texts;
    var el = function (id) { return document.getElementById(id); };
    var ts = cfg.t, n = ts.length;
    var state = window.__gwPlayback = { playing: false, speed: 10, tv: n ? ts[0] : 0, index: 0, lon: null, lat: null, frames: 0 };
    var graph = null;

    function mapReady() {
      if (!graph) {
        var box = el(ids.SUP_MAP);
        graph = (window.Plotly && box && box.querySelector(".js-plotly-plot")) || null;
        if (!graph) { return false; }
      }
      var fl = graph._fullLayout, sub = fl && fl.map && fl.map._subplot, ml = sub && sub.map;
      if (!ml || !ml.style) { return false; }
      if (typeof ml.style._loaded === "boolean") { return ml.style._loaded; }
      return !!(ml.isStyleLoaded && ml.isStyleLoaded());
    }

    function traceIndex(uid) {
      for (var i = 0; i < graph.data.length; i++) { if (graph.data[i].uid === uid) { return i; } }
      return -1;
    }

    function fmt(sec) {
      return new Date(sec * 1000).toLocaleTimeString(cfg.lang === "zh" ? "zh-CN" : "en-GB", { timeZone: cfg.tz, hour12: false });
    }

    function locate(tv) {  // the last fix at or before tv, and the position interpolated to tv
      var lo = 0, hi = n - 1;
      if (tv <= ts[0]) { return [0, cfg.lon[0], cfg.lat[0]]; }
      if (tv >= ts[hi]) { return [hi, cfg.lon[hi], cfg.lat[hi]]; }
      while (hi - lo > 1) { var mid = (lo + hi) >> 1; if (ts[mid] <= tv) { lo = mid; } else { hi = mid; } }
      var span = ts[hi] - ts[lo], f = span > 0 ? (tv - ts[lo]) / span : 0;
      if (span > cfg.skipGap) { f = 0; }
      return [lo, cfg.lon[lo] + f * (cfg.lon[hi] - cfg.lon[lo]), cfg.lat[lo] + f * (cfg.lat[hi] - cfg.lat[lo])];
    }

    // controls, built here so the script owns them (Dash renders empty placeholders)
    var playBtn = document.createElement("button");
    playBtn.type = "button"; playBtn.className = "gw-sup-playbtn"; playBtn.textContent = T["sup.play"];
    playBtn.disabled = n < 2;
    el(ids.SUP_PLAY).appendChild(playBtn);
    var scrub = document.createElement("input");
    scrub.type = "range"; scrub.className = "gw-sup-range"; scrub.step = "1";
    scrub.min = n ? String(Math.floor(ts[0])) : "0"; scrub.max = n ? String(Math.ceil(ts[n - 1])) : "0";
    scrub.value = scrub.min; scrub.disabled = n < 2;
    el(ids.SUP_SCRUB).appendChild(scrub);
    var speed = document.createElement("select");
    speed.className = "gw-sup-speedsel"; speed.title = T["sup.speed"];
    cfg.speeds.forEach(function (s) {
      var o = document.createElement("option"); o.value = String(s); o.textContent = s + "×";
      if (s === state.speed) { o.selected = true; }
      speed.appendChild(o);
    });
    el(ids.SUP_SPEED).appendChild(speed);

    var drawnAt = 0;
    function draw(force) {
      if (!n) { return; }
      var hit = locate(state.tv);
      state.index = hit[0]; state.lon = hit[1]; state.lat = hit[2];
      el(ids.SUP_CLOCK).textContent = fmt(state.tv);
      if (!scrub.matches(":active")) { scrub.value = String(Math.round(state.tv)); }
      if (!force && Date.now() - drawnAt < 100) { return; }  // ten map redraws a second at most
      if (!mapReady()) { return; }
      var i = traceIndex("play");
      if (i < 0) { return; }
      drawnAt = Date.now();
      window.Plotly.restyle(graph, { lon: [[state.lon]], lat: [[state.lat]] }, [i]);
      state.frames++;
    }

    var last = 0;
    function frame(now) {
      if (state.playing) {
        var dt = last ? (now - last) / 1000 : 0;
        var tv = state.tv + dt * state.speed;
        var hit = locate(state.tv);
        if (hit[0] < n - 1 && ts[hit[0] + 1] - ts[hit[0]] > cfg.skipGap && tv > ts[hit[0]]) {
          tv = Math.max(tv, ts[hit[0] + 1]);  // jump over the gap
        }
        state.tv = Math.min(tv, ts[n - 1]);
        if (state.tv >= ts[n - 1]) { setPlaying(false); }
        draw(false);
      }
      last = now;
      window.requestAnimationFrame(frame);
    }

    function setPlaying(on) {
      state.playing = on && n > 1;
      if (state.playing && state.tv >= ts[n - 1]) { state.tv = ts[0]; }
      playBtn.textContent = state.playing ? T["sup.pause"] : T["sup.play"];
      playBtn.classList.toggle("gw-playing", state.playing);
    }

    playBtn.addEventListener("click", function () { setPlaying(!state.playing); });
    scrub.addEventListener("input", function () { state.tv = Number(scrub.value); draw(true); });
    speed.addEventListener("change", function () { state.speed = Number(speed.value); });
    window.requestAnimationFrame(frame);
    var waitMap = setInterval(function () { if (mapReady()) { clearInterval(waitMap); draw(true); } }, 250);

    // live: room supervisor:<id> on /live (refused without a session: the page keeps what it showed)
    if (!window.io) { return; }
    var socket = window.io("/live", { transports: ["websocket"] });
    socket.on("connect", function () { socket.emit("join", { room: cfg.room }); });
    function onLive(msg) {
      if (msg.room !== cfg.room || !msg.sup || !msg.sup.id) { return; }
      var k = msg.sup.id.indexOf(cfg.id);
      if (k < 0) { return; }
      var status = msg.sup.status[k], badge = el(ids.SUP_STATUS);
      if (badge) {
        badge.textContent = T["status." + status] || status;
        badge.style.background = cfg.statusColours[status] || "#888";
        badge.setAttribute("data-status", status);
      }
      var lf = el(ids.SUP_LASTFIX);
      if (lf && msg.sup.at[k]) { lf.textContent = lf.textContent.split(" ")[0] + " " + fmt(msg.sup.at[k]); }
      if (msg.sup.lon[k] === null) { return; }
      var at = msg.sup.at[k], grows = at !== null && (!n || at > ts[n - 1]);
      if (grows) {  // today's track grows with the live fixes (the playback can reach them)
        ts.push(at); cfg.lon.push(msg.sup.lon[k]); cfg.lat.push(msg.sup.lat[k]); n = ts.length;
        scrub.min = String(Math.floor(ts[0])); scrub.max = String(Math.ceil(ts[n - 1]));
        playBtn.disabled = scrub.disabled = n < 2;
      }
      if (mapReady()) {
        var i = traceIndex("live"), j = traceIndex("track");
        if (i >= 0) {
          window.Plotly.restyle(graph, { lon: [[msg.sup.lon[k]]], lat: [[msg.sup.lat[k]]],
            "marker.color": cfg.statusColours[status] || "#888" }, [i]);
        }
        if (grows && j >= 0) { window.Plotly.extendTraces(graph, { lon: [[msg.sup.lon[k]]], lat: [[msg.sup.lat[k]]] }, [j]); }
      }
    }
    // the room's snapshot answers the join: from then on ticks come (tests wait for state.joined)
    socket.on("snapshot", function (msg) { state.joined = msg && msg.room; onLive(msg); });
    socket.on("tick", onLive);
    // Dash replaces the page on client-side navigation: stop this page's socket when it is gone
    var gone = setInterval(function () {
      if (!document.querySelector("div[data-sup-config]")) { clearInterval(gone); socket.close(); started = false; }
    }, 1000);
  }

  setInterval(boot, 300);  // Dash renders pages after the scripts load, and again on navigation
})();
