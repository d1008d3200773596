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

  setInterval(function () {
    var el = document.querySelector("div.gw-live-config");
    var text = el ? el.textContent : null;
    if (text === seen) { return; }
    seen = text;
    var cfg = null;
    try { cfg = text ? JSON.parse(text) : null; } catch (e) { cfg = null; }
    follow(cfg);
  }, 500);
})();
