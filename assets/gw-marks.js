/* GridWall point marks: the wall's supervisors, open cases and new-case pulses, drawn on a 2D canvas
 * laid over its MapLibre map (window.GwMarks, used by gw-wall.js).
 *
 * Why not map layers: with 10,000 supervisors fixing every 10 s, restyling Plotly scattermap traces
 * made MapLibre re-tile every point in its worker and repaint the whole map (heat image, outlines,
 * labels and 15,000 circles) in software GL on every tick. On 2 cores a paint took most of a second
 * and the next tick waited for it (python -m bench wall: tick → map p95 1.1 s). Here the map repaints
 * only when its view or its heat image changes; a tick redraws this canvas: points kept in Web
 * Mercator, grouped by colour, one path per group.
 *
 * The view is read from the map on every draw (two corners through map.project: an affine map from
 * Web Mercator, as the wall has no bearing or pitch), and the canvas is redrawn on every "move" and
 * "resize" of the map, so scenes and take-overs keep the marks in place.
 */
(function () {
  "use strict";
  var TAU = 2 * Math.PI;

  function mercX(lon) { return (lon + 180) / 360; }
  function mercY(lat) {
    var s = Math.sin(lat * Math.PI / 180);
    return 0.5 - Math.log((1 + s) / (1 - s)) / (4 * Math.PI);
  }

  // device pixels per CSS pixel of the map: the screen's ratio times the page's CSS zoom (4K and 8K
  // walls zoom the page by 2), so the marks stay sharp where the map's own canvas is scaled up
  function scale(el) {
    var zoom = el.clientWidth ? el.getBoundingClientRect().width / el.clientWidth : 1;
    return (window.devicePixelRatio || 1) * (zoom > 0 ? zoom : 1);
  }

  function Marks(map) {
    this.map = null;
    this.layers = {};
    this.order = [];
    // two canvases: the marks, and above them the pulses of new cases (few points; its CSS class
    // blinks it in steps, so only that layer is composited again, twice a second)
    this.canvases = {};
    var self = this;
    ["marks", "pulse"].forEach(function (name) {
      var cv = self.canvases[name] = document.createElement("canvas");
      cv.className = "gw-marks gw-marks-" + name;
      var st = cv.style;
      st.position = "absolute"; st.left = "0"; st.top = "0"; st.pointerEvents = "none";
    });
    this.redraw = function () { self.draw(); };
    this.drawMs = 0;  // the last draw's cost (benchmarks read it)
    this.attach(map);
  }

  /** Follow a (new) MapLibre map: Plotly may build another one when the figure is replaced. */
  Marks.prototype.attach = function (map) {
    if (this.map === map) { return; }
    if (this.map) { this.map.off("move", this.redraw); this.map.off("resize", this.redraw); }
    this.map = map;
    map.getCanvasContainer().appendChild(this.canvases.marks);
    map.getCanvasContainer().appendChild(this.canvases.pulse);
    map.on("move", this.redraw);
    map.on("resize", this.redraw);
  };

  /** Replace one layer: colour and alpha are one value or one per point; radius and ring in CSS px;
   * canvas "marks" (the default) or "pulse". */
  Marks.prototype.set = function (name, lon, lat, colour, alpha, radius, ring, canvas) {
    var n = lon.length, x = new Float64Array(n), y = new Float64Array(n), groups = {}, list = [];
    for (var i = 0; i < n; i++) {
      x[i] = mercX(lon[i]); y[i] = mercY(lat[i]);
      var c = typeof colour === "string" ? colour : colour[i];
      var a = typeof alpha === "number" ? alpha : alpha[i];
      var key = c + "|" + a, g = groups[key];
      if (!g) { g = groups[key] = { colour: c, alpha: a, idx: [] }; list.push(g); }
      g.idx.push(i);
    }
    var old = this.layers[name];
    if (!old) { this.order.push(name); }
    this.layers[name] = { lon: lon, lat: lat, x: x, y: y, groups: list, radius: radius, ring: ring || 0,
                          canvas: canvas || "marks", visible: old ? old.visible : true };
  };

  Marks.prototype.show = function (name, visible) {
    var l = this.layers[name];
    if (l && l.visible !== visible) { l.visible = visible; this.draw(); }
  };

  /** The affine map from Web Mercator to CSS pixels of the current view, or null while it has no size. */
  Marks.prototype.view = function () {
    var map = this.map, b = map.getBounds();
    var w = b.getWest(), e = b.getEast(), n = b.getNorth(), s = b.getSouth();
    var p = map.project([w, n]), q = map.project([e, s]);
    var dx = mercX(e) - mercX(w), dy = mercY(s) - mercY(n);
    if (!(dx > 0) || !(dy > 0)) { return null; }
    var sx = (q.x - p.x) / dx, sy = (q.y - p.y) / dy;
    return { sx: sx, bx: p.x - mercX(w) * sx, sy: sy, by: p.y - mercY(n) * sy };
  };

  Marks.prototype.draw = function () {
    var t0 = performance.now(), map = this.map, base = map.getCanvas();
    var w = base.clientWidth, h = base.clientHeight, dpr = scale(base), ctxs = {};
    for (var name in this.canvases) {
      var cv = this.canvases[name];
      if (cv.width !== Math.round(w * dpr) || cv.height !== Math.round(h * dpr)) {
        cv.width = Math.round(w * dpr); cv.height = Math.round(h * dpr);
        cv.style.width = w + "px"; cv.style.height = h + "px";
      }
      var c2 = ctxs[name] = cv.getContext("2d");
      c2.setTransform(1, 0, 0, 1, 0, 0);
      c2.clearRect(0, 0, cv.width, cv.height);
      c2.setTransform(dpr, 0, 0, dpr, 0, 0);
    }
    var v = this.view();
    if (!v) { return; }
    for (var k = 0; k < this.order.length; k++) {
      var l = this.layers[this.order[k]], ctx = ctxs[l.canvas];
      if (!l.visible) { continue; }
      var r = l.ring ? l.radius + l.ring / 2 : l.radius;  // the ring's stroke is centred on the path
      for (var gi = 0; gi < l.groups.length; gi++) {
        var g = l.groups[gi], idx = g.idx, drawn = 0;
        ctx.beginPath();
        for (var j = 0; j < idx.length; j++) {
          var X = l.x[idx[j]] * v.sx + v.bx, Y = l.y[idx[j]] * v.sy + v.by;
          if (X < -r || Y < -r || X > w + r || Y > h + r) { continue; }
          ctx.moveTo(X + r, Y);
          ctx.arc(X, Y, r, 0, TAU);
          drawn++;
        }
        if (!drawn) { continue; }
        ctx.globalAlpha = g.alpha;
        ctx.fillStyle = g.colour;
        ctx.fill();
        if (l.ring) { ctx.lineWidth = l.ring; ctx.strokeStyle = "#ffffff"; ctx.stroke(); }
      }
    }
    for (var c in ctxs) { ctxs[c].globalAlpha = 1; }
    this.drawMs = performance.now() - t0;
  };

  /** The layer's points as last set (tests read them). */
  Marks.prototype.points = function (name) {
    var l = this.layers[name];
    return l ? { lon: l.lon, lat: l.lat, visible: l.visible } : { lon: [], lat: [], visible: false };
  };

  /** The pixel [r, g, b, a] at a place on a layer's canvas (tests check that a mark is drawn there). */
  Marks.prototype.pixel = function (lon, lat, layer) {
    var l = this.layers[layer || "supervisors"], cv = this.canvases[(l && l.canvas) || "marks"];
    var v = this.view(), dpr = cv.width / Math.max(1, cv.clientWidth);
    if (!v) { return null; }
    var X = Math.round((mercX(lon) * v.sx + v.bx) * dpr), Y = Math.round((mercY(lat) * v.sy + v.by) * dpr);
    if (X < 0 || Y < 0 || X >= cv.width || Y >= cv.height) { return null; }
    return Array.prototype.slice.call(cv.getContext("2d").getImageData(X, Y, 1, 1).data);
  };

  window.GwMarks = Marks;
})();
