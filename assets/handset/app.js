/* 城管通 — the supervisor's handset app (issue 16). Speaks GridWall's documented /device protocol
 * (docs/protocol.md) like any third-party handset: fixes, reports and task answers go through an
 * outbox in IndexedDB and leave in order when the socket is up; each carries an id the server
 * deduplicates, so a retry after a lost answer is harmless (exactly once). Photos are scaled in the
 * browser to at most 1600 px JPEG and uploaded to /api/v1/media first. Nothing comes from outside. */
(() => {
  'use strict';

  const VERSION = '0.1.0';
  const TEXT = JSON.parse(document.getElementById('gw-m-text').textContent);
  const LANGS = (document.body.dataset.langs || 'zh,en').split(',');
  let lang = localStorage.getItem('gw.m.lang') || document.body.dataset.lang || 'zh';
  const t = (k) => (TEXT[k] && (TEXT[k][lang] || TEXT[k].zh)) || k;

  const MAX_PX = 1600; // photos: the longer side, after scaling in the browser
  const FIX_EVERY_MS = 5000; // at most one fix per 5 s …
  const FIX_MOVED_M = 10; // … or sooner when moved more than 10 m
  const FIX_FLOOR_MS = 1000;
  const ACK_TIMEOUT_MS = 15000;
  const RETRY_REASONS = new Set(['unavailable', 'rate_limited']);

  // -- tiny DOM helpers (text only: nothing from the server becomes HTML) -------------------------
  const $ = (sel, root = document) => root.querySelector(sel);
  function h(tag, attrs, ...kids) {
    const el = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === null || v === undefined || v === false) continue;
      if (k === 'class') el.className = v;
      else if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
      else if (k === 'text') el.textContent = v;
      else el.setAttribute(k, v === true ? '' : v);
    }
    for (const kid of kids.flat()) {
      if (kid === null || kid === undefined || kid === false) continue;
      el.append(kid instanceof Node ? kid : document.createTextNode(String(kid)));
    }
    return el;
  }
  const uid = (p) => `${p}-${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 10)}`;
  function toast(text, kind) {
    const el = $('#toast');
    el.textContent = text;
    el.className = `toast ${kind || ''}`;
    el.hidden = false;
    clearTimeout(toast.timer);
    toast.timer = setTimeout(() => { el.hidden = true; }, kind === 'err' ? 8000 : 5000);
  }
  function reasonText(r) {
    const key = `m.reason.${r.reason}`;
    if (TEXT[key]) return t(key);
    if (TEXT[`rule.${r.reason}`]) return t(`rule.${r.reason}`);
    return `${r.reason}: ${r.message || ''}`;
  }
  function applyText(root = document) {
    root.querySelectorAll('[data-t]').forEach((el) => { el.textContent = t(el.dataset.t); });
    document.documentElement.lang = lang;
  }

  // -- state -----------------------------------------------------------------------------------------
  const S = {
    token: localStorage.getItem('gw.m.token'),
    person: localStorage.getItem('gw.m.person'),
    name: localStorage.getItem('gw.m.name') || '',
    adcode: null,
    socket: null,
    connected: false,
    pos: null, // the latest fix from the browser {lon, lat, accuracy, speed, at}
    gps: 'wait', // wait | ok | denied | none
    lastSent: null,
    catalogue: null,
    names: { streets: {}, communities: {} },
    grids: null, // [{code, street, community, rings, bbox}]
    tasks: [],
    screen: 'home',
    waiters: new Map(), // outbox key → resolve (the answer of an item sent while the user waits)
    recent: JSON.parse(localStorage.getItem('gw.m.recent') || '[]'),
    tz: localStorage.getItem('gw.m.tz') || undefined, // the city's time zone (times are shown in it)
  };

  // -- the outbox: IndexedDB, in order ------------------------------------------------------------
  let dbp = null;
  function db() {
    if (!dbp) {
      dbp = new Promise((resolve, reject) => {
        const req = indexedDB.open('gw-m', 1);
        req.onupgradeneeded = () => {
          req.result.createObjectStore('outbox', { keyPath: 'key', autoIncrement: true });
          req.result.createObjectStore('tasks', { keyPath: 'k' });
        };
        req.onsuccess = () => resolve(req.result);
        req.onerror = () => reject(req.error);
      });
    }
    return dbp;
  }
  async function tx(store, mode, fn) {
    const d = await db();
    return new Promise((resolve, reject) => {
      const x = d.transaction(store, mode);
      const out = fn(x.objectStore(store));
      x.oncomplete = () => resolve(out && 'result' in out ? out.result : out);
      x.onerror = () => reject(x.error);
      x.onabort = () => reject(x.error);
    });
  }
  const outboxAdd = (item) => tx('outbox', 'readwrite', (s) => s.add(item));
  const outboxPut = (item) => tx('outbox', 'readwrite', (s) => s.put(item));
  const outboxDel = (key) => tx('outbox', 'readwrite', (s) => s.delete(key));
  const outboxAll = () => tx('outbox', 'readonly', (s) => s.getAll());
  const outboxCount = () => tx('outbox', 'readonly', (s) => s.count());
  const outboxClear = () => tx('outbox', 'readwrite', (s) => s.clear());
  const tasksSave = (list) => tx('tasks', 'readwrite', (s) => { s.clear(); list.forEach((x) => s.put({ ...x, k: `${x.case_id}/${x.task}` })); });
  const tasksLoad = () => tx('tasks', 'readonly', (s) => s.getAll());

  async function showOutbox() {
    const n = await outboxCount();
    const el = $('#outbox');
    el.hidden = n === 0;
    el.textContent = `${t('m.waiting')} ${n}`;
    el.dataset.count = String(n);
  }

  // -- the server's HTTP side -------------------------------------------------------------------------
  async function api(path, opts = {}) {
    const headers = { ...(opts.headers || {}) };
    if (S.token) headers.Authorization = `Bearer ${S.token}`;
    const resp = await fetch(path, { ...opts, headers });
    let body = null;
    try { body = await resp.json(); } catch (e) { body = null; }
    if (!resp.ok) {
      const err = new Error((body && body.reason) || `http_${resp.status}`);
      err.status = resp.status;
      err.reason = (body && body.reason) || `http_${resp.status}`;
      throw err;
    }
    return body;
  }

  // -- the socket ------------------------------------------------------------------------------------
  function setNet(state) {
    const el = $('#net');
    el.dataset.t = state === 'on' ? 'm.online' : state === 'off' ? 'm.offline' : 'm.connecting';
    el.className = `pill ${state === 'on' ? 'on' : 'off'}`;
    el.textContent = t(el.dataset.t);
    el.dataset.state = state;
    $('#banner').hidden = state === 'on' || !S.token;
    el.hidden = !S.token;  // before sign-in there is no connection to speak of
  }
  function connect() {
    if (S.socket) S.socket.close();
    setNet('connecting');
    const socket = io('/device', { auth: { token: S.token }, transports: ['websocket'], reconnectionDelayMax: 10000 });
    S.socket = socket;
    socket.on('connect', () => {
      S.connected = true;
      setNet('on');
      hello();
      refreshTasks();
      flush();
    });
    socket.on('disconnect', () => { S.connected = false; setNet('off'); });
    socket.on('connect_error', (err) => {
      S.connected = false;
      setNet('off');
      const why = err && err.message;
      if (why === 'token_revoked' || why === 'token_unknown' || why === 'token_wrong_kind') revoked();
    });
    socket.on('revoked', () => revoked());
    socket.on('task', (task) => { addTask(task); });
  }
  // what the desk's supervisor page shows of this phone: the app's version and the battery
  async function hello() {
    const body = { version: VERSION, battery: null, charging: null };
    try {
      if (navigator.getBattery) {
        const b = await navigator.getBattery();
        body.battery = Math.round(b.level * 100) / 100;
        body.charging = !!b.charging;
      }
    } catch (err) { /* the browser does not say */ }
    try {
      await api('/m/api/hello', { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify(body) });
    } catch (err) {
      if (err.status === 401) revoked();
    }
  }
  function emit(event, payload) {
    return S.socket.timeout(ACK_TIMEOUT_MS).emitWithAck(event, payload);
  }
  function revoked() {
    if (S.socket) { S.socket.close(); S.socket = null; }
    forget();
    toast(t('m.revoked'), 'err');
    render();
    const p = $('#signin-error');
    if (p) p.textContent = t('m.revoked');
  }
  function forget() {
    S.token = null;
    S.connected = false;
    ['gw.m.token', 'gw.m.person', 'gw.m.name'].forEach((k) => localStorage.removeItem(k));
    outboxClear().then(showOutbox);
    tasksSave([]);
    S.tasks = [];
  }

  // -- sending what waits, in order -------------------------------------------------------------------
  let flushing = false;
  async function flush() {
    if (flushing || !S.connected || !S.token) return;
    flushing = true;
    try {
      for (;;) {
        if (!S.connected) break;
        const items = await outboxAll();
        if (!items.length) break;
        const head = items[0];
        if (head.kind === 'fix') {
          const run = [];
          for (const it of items) { if (it.kind !== 'fix' || run.length >= 200) break; run.push(it); }
          const ack = await emit('positions', { fixes: run.map((it) => it.payload) });
          const retry = new Set((ack.rejected || []).filter((r) => RETRY_REASONS.has(r.reason)).map((r) => r.id));
          if (retry.size === run.length) break; // the server is busy: later
          for (const it of run) if (!retry.has(it.payload.id)) await outboxDel(it.key);
        } else {
          const done = await sendOne(head);
          if (!done) break;
        }
        await showOutbox();
      }
    } catch (err) {
      // no answer in time or the network went: everything stays in the outbox for the next try
    } finally {
      flushing = false;
      showOutbox();
    }
  }
  async function upload(blob, kind) {
    const form = new FormData();
    form.append('kind', kind);
    form.append('file', blob, kind === 'voice' ? 'voice' : 'photo.jpg');
    const body = await api('/api/v1/media', { method: 'POST', body: form });
    return body.ref;
  }
  async function sendOne(item) {
    // photos first (a refusal of one is the item's answer); their references are kept on the item
    for (const m of item.media || []) {
      if (m.ref) continue;
      try {
        m.ref = await upload(m.blob, m.kind);
        m.blob = null;
        await outboxPut(item);
      } catch (err) {
        if (err.status && err.status < 500 && err.status !== 429 && err.status !== 401) {
          return finish(item, { accepted: [], duplicates: [], rejected: [{ id: item.payload.id, reason: err.reason, message: '' }] });
        }
        if (err.status === 401) revoked();
        return false;
      }
    }
    const payload = { ...item.payload };
    const refs = (item.media || []).filter((m) => m.kind !== 'after').map((m) => m.ref);
    const after = (item.media || []).filter((m) => m.kind === 'after').map((m) => m.ref);
    if (refs.length) payload.media = refs;
    if (after.length) payload.handled_media = after;
    const ack = await emit(item.kind, payload);
    const rej = (ack.rejected || [])[0];
    if (rej && RETRY_REASONS.has(rej.reason)) return false;
    return finish(item, ack);
  }
  async function finish(item, ack) {
    await outboxDel(item.key);
    const rej = (ack.rejected || [])[0];
    const result = {
      kind: item.kind,
      id: item.payload.id,
      at: new Date().toISOString(),
      ok: !rej,
      caseId: (ack.cases || {})[item.payload.id] || item.payload.case_id || null,
      reason: rej ? reasonText(rej) : null,
      label: item.label || '',
    };
    if (item.kind !== 'task_ack') {
      S.recent.unshift(result);
      S.recent = S.recent.slice(0, 20);
      localStorage.setItem('gw.m.recent', JSON.stringify(S.recent));
    }
    const wait = S.waiters.get(item.key);
    if (wait) { S.waiters.delete(item.key); wait(result); }
    else if (item.kind !== 'task_ack') announce(result);
    return true;
  }
  function announce(r) {
    if (r.ok && r.kind === 'report') toast(`${t('m.accepted')} ${r.caseId}`, 'ok');
    else if (r.ok && r.kind === 'proposal') toast(`${t('m.propose.sent')} ${r.caseId || ''}`, 'ok');
    else if (r.ok) toast(`${t('m.answered')} ${r.caseId || ''}`, 'ok');
    else toast(`${t('m.rejected')}: ${r.reason}`, 'err');
    if (S.screen === 'report' || S.screen === 'settings' || S.screen === 'propose') render();
  }
  async function enqueue(item, wait) {
    const key = await outboxAdd(item);
    await showOutbox();
    if (!wait) { flush(); return null; }
    const answer = new Promise((resolve) => S.waiters.set(key, resolve));
    flush();
    // online: the answer comes within the ack timeout; offline: say it is kept
    const timeout = new Promise((resolve) => setTimeout(() => resolve(null), S.connected ? ACK_TIMEOUT_MS + 2000 : 300));
    const r = await Promise.race([answer, timeout]);
    if (r === null) S.waiters.delete(key);
    return r;
  }

  // -- position -------------------------------------------------------------------------------------
  function metres(aLon, aLat, bLon, bLat) {
    const R = 6371008.8, rad = Math.PI / 180;
    const dLat = (bLat - aLat) * rad, dLon = (bLon - aLon) * rad;
    const s = Math.sin(dLat / 2) ** 2 + Math.cos(aLat * rad) * Math.cos(bLat * rad) * Math.sin(dLon / 2) ** 2;
    return 2 * R * Math.asin(Math.min(1, Math.sqrt(s)));
  }
  function onPosition(p) {
    const c = p.coords;
    const fix = {
      lon: Math.round(c.longitude * 1e7) / 1e7,
      lat: Math.round(c.latitude * 1e7) / 1e7,
      accuracy: Number.isFinite(c.accuracy) && c.accuracy >= 0 ? Math.round(c.accuracy * 10) / 10 : null,
      speed: Number.isFinite(c.speed) && c.speed >= 0 ? Math.round(c.speed * 100) / 100 : null,
      at: new Date(p.timestamp || Date.now()).toISOString(),
    };
    const first = !S.pos;
    S.pos = fix;
    S.gps = 'ok';
    const now = p.timestamp || Date.now();
    const last = S.lastSent;
    const dt = last ? now - last.t : Infinity;
    const moved = last ? metres(last.lon, last.lat, fix.lon, fix.lat) : Infinity;
    if (S.token && (dt >= FIX_EVERY_MS || (moved > FIX_MOVED_M && dt >= FIX_FLOOR_MS))) {
      S.lastSent = { t: now, lon: fix.lon, lat: fix.lat };
      const payload = { id: uid('fx'), lon: fix.lon, lat: fix.lat, crs: 'wgs84', at: fix.at };
      if (fix.accuracy !== null) payload.accuracy = fix.accuracy;
      if (fix.speed !== null) payload.speed = fix.speed;
      enqueue({ kind: 'fix', payload }, false);
    } else if (S.token && moved > FIX_MOVED_M) {  // moved, but too soon after the last fix: this point is
      clearTimeout(S.fixLater);                   // sent once the floor has passed, unless another comes
      const c2 = { longitude: fix.lon, latitude: fix.lat, accuracy: fix.accuracy, speed: fix.speed };
      S.fixLater = setTimeout(() => { if (S.pos === fix) onPosition({ coords: c2, timestamp: Date.now() }); }, FIX_FLOOR_MS - dt + 20);
    }
    if (map.follow || first) map.center(fix.lon, fix.lat);
    map.draw();
    showGps();
  }
  function onPositionError(err) {
    S.gps = err && err.code === 1 ? 'denied' : 'none';
    showGps();
  }
  let watching = false;
  function startGps() {
    if (watching) return;
    if (!('geolocation' in navigator)) { S.gps = 'none'; return; }
    watching = true;
    navigator.geolocation.watchPosition(onPosition, onPositionError, { enableHighAccuracy: true, maximumAge: 0, timeout: 30000 });
  }
  function showGps() {
    const el = $('#gps');
    if (!el) return;
    if (S.gps === 'ok' && S.pos) {
      const time = new Date(S.pos.at).toLocaleTimeString(lang === 'zh' ? 'zh-CN' : 'en-GB', { hour12: false, timeZone: S.tz });
      const acc = S.pos.accuracy !== null ? ` · ${t('m.gps.accuracy')} ±${Math.round(S.pos.accuracy)} m` : '';
      el.textContent = `${t('m.gps.last')} ${time}${acc}`;
      el.className = 'muted';
    } else {
      el.textContent = t(S.gps === 'denied' ? 'm.gps.denied' : S.gps === 'none' ? 'm.gps.none' : 'm.gps.wait');
      el.className = S.gps === 'wait' ? 'muted' : 'err';
    }
  }

  // -- the map: unit grids on a canvas (the district's own GeoJSON, WGS-84), a pin in the middle ----
  const map = {
    el: null, canvas: null, lon: null, lat: null, k: 110000, follow: true, marks: [],
    mount(host, opts = {}) {
      this.follow = opts.follow !== false;
      this.marks = opts.marks || [];
      this.tap = opts.tap === true;  // a tap (no drag) centres the map there: the pin goes where tapped
      this.onMove = opts.onMove || null;
      const wrap = h('div', { class: 'map', 'data-testid': 'map' },
        h('canvas'),
        opts.pin ? h('img', { class: 'pin', src: 'data:image/svg+xml,' + encodeURIComponent(PIN), alt: '' }) : null,
        h('button', { class: 'me', type: 'button', onclick: () => { this.follow = true; if (S.pos) this.center(S.pos.lon, S.pos.lat); this.draw(); }, text: t('m.place.gps') }));
      host.append(wrap);
      this.el = wrap;
      this.canvas = $('canvas', wrap);
      if (opts.lon !== undefined && opts.lon !== null) this.center(opts.lon, opts.lat);
      else if (S.pos) this.center(S.pos.lon, S.pos.lat);
      this.gestures();
      requestAnimationFrame(() => this.draw());
    },
    center(lon, lat) { this.lon = lon; this.lat = lat; if (this.onMove) this.onMove(lon, lat); },
    gestures() {
      const pts = new Map();
      let last = null;
      const c = this.canvas;
      let down = null;  // where a one-finger touch began (a tap: it ends within 8 px)
      c.addEventListener('pointerdown', (e) => { c.setPointerCapture(e.pointerId); pts.set(e.pointerId, [e.clientX, e.clientY]); last = null; down = pts.size === 1 ? [e.clientX, e.clientY] : null; });
      c.addEventListener('pointermove', (e) => {
        if (!pts.has(e.pointerId) || this.lon === null) return;
        const prev = pts.get(e.pointerId);
        pts.set(e.pointerId, [e.clientX, e.clientY]);
        if (pts.size === 1) {
          const cos = Math.cos(this.lat * Math.PI / 180);
          this.follow = false;
          this.center(this.lon - (e.clientX - prev[0]) / (this.k * cos), this.lat + (e.clientY - prev[1]) / this.k);
        } else if (pts.size === 2) {
          const [a, b] = [...pts.values()];
          const d = Math.hypot(a[0] - b[0], a[1] - b[1]);
          if (last) this.k = Math.min(2e6, Math.max(8000, this.k * d / last));
          last = d;
        }
        this.draw();
      });
      const up = (e) => {
        pts.delete(e.pointerId); last = null;
        if (e.type === 'pointerup' && this.tap && down && this.lon !== null && Math.hypot(e.clientX - down[0], e.clientY - down[1]) < 8) {
          const r = c.getBoundingClientRect(), cos = Math.cos(this.lat * Math.PI / 180);
          this.follow = false;
          this.center(this.lon + (e.clientX - r.left - r.width / 2) / (this.k * cos), this.lat - (e.clientY - r.top - r.height / 2) / this.k);
          this.draw();
        }
        down = null;
      };
      c.addEventListener('pointerup', up);
      c.addEventListener('pointercancel', up);
      c.addEventListener('wheel', (e) => { e.preventDefault(); this.k = Math.min(2e6, Math.max(8000, this.k * (e.deltaY < 0 ? 1.25 : 0.8))); this.draw(); }, { passive: false });
    },
    draw() {
      const c = this.canvas;
      if (!c || !c.isConnected) return;
      const w = c.clientWidth, hgt = c.clientHeight, dpr = window.devicePixelRatio || 1;
      if (c.width !== Math.round(w * dpr)) { c.width = Math.round(w * dpr); c.height = Math.round(hgt * dpr); }
      const g = c.getContext('2d');
      g.setTransform(dpr, 0, 0, dpr, 0, 0);
      g.fillStyle = '#eef1f5';
      g.fillRect(0, 0, w, hgt);
      if (this.lon === null) return;
      const cos = Math.cos(this.lat * Math.PI / 180), k = this.k;
      const X = (lon) => w / 2 + (lon - this.lon) * k * cos, Y = (lat) => hgt / 2 - (lat - this.lat) * k;
      const half = [w / 2 / (k * cos), hgt / 2 / k];
      const view = [this.lon - half[0], this.lat - half[1], this.lon + half[0], this.lat + half[1]];
      const here = gridAt(this.lon, this.lat);
      if (S.basemap) {  // Web Mercator tiles placed by their corners (exact enough within a tile)
        const z = Math.max(S.basemap.minzoom, Math.min(18, Math.round(Math.log2(k * cos * 360 / 256))));
        const n = 2 ** z, tx = (lon) => Math.floor((lon + 180) / 360 * n);
        const ty = (lat) => Math.floor((1 - Math.asinh(Math.tan(lat * Math.PI / 180)) / Math.PI) / 2 * n);
        const lonOf = (x) => x / n * 360 - 180, latOf = (y) => Math.atan(Math.sinh(Math.PI * (1 - 2 * y / n))) * 180 / Math.PI;
        const [x0, x1, y0, y1] = [tx(view[0]), tx(view[2]), ty(view[3]), ty(view[1])];
        if ((x1 - x0 + 1) * (y1 - y0 + 1) <= 64) {
          for (let x = x0; x <= x1; x++) {
            for (let y = y0; y <= y1; y++) {
              const img = basemapTile(z, x, y);
              if (img) g.drawImage(img, X(lonOf(x)), Y(latOf(y)), X(lonOf(x + 1)) - X(lonOf(x)), Y(latOf(y + 1)) - Y(latOf(y)));
            }
          }
        }
      }
      g.lineWidth = 1.2;
      for (const f of S.grids || []) {
        const b = f.bbox;
        if (b[2] < view[0] || b[0] > view[2] || b[3] < view[1] || b[1] > view[3]) continue;
        g.beginPath();
        for (const ring of f.rings) {
          ring.forEach(([x, y], i) => (i ? g.lineTo(X(x), Y(y)) : g.moveTo(X(x), Y(y))));
          g.closePath();
        }
        if (here && f.code === here.code) { g.fillStyle = 'rgba(11,61,145,.12)'; g.fill(); }
        g.strokeStyle = f.street === (here && here.street) ? '#6d86b3' : '#a9b6c9';
        g.stroke();
      }
      for (const m of this.marks) {
        g.fillStyle = '#c4161c';
        g.beginPath(); g.arc(X(m.lon), Y(m.lat), 9, 0, 2 * Math.PI); g.fill();
        g.strokeStyle = '#fff'; g.lineWidth = 3; g.stroke();
      }
      if (S.pos) {
        const x = X(S.pos.lon), y = Y(S.pos.lat);
        if (S.pos.accuracy) {
          g.fillStyle = 'rgba(30,110,255,.15)';
          g.beginPath(); g.arc(x, y, Math.max(6, S.pos.accuracy * k / 111320), 0, 2 * Math.PI); g.fill();
        }
        g.fillStyle = '#1e6eff'; g.strokeStyle = '#fff'; g.lineWidth = 3;
        g.beginPath(); g.arc(x, y, 8, 0, 2 * Math.PI); g.fill(); g.stroke();
      }
      // a 100 m scale bar
      const bar = 100 * k / 111320;
      g.strokeStyle = '#0d1b2a'; g.lineWidth = 3;
      g.beginPath(); g.moveTo(12, hgt - 14); g.lineTo(12 + bar, hgt - 14); g.stroke();
      g.fillStyle = '#0d1b2a'; g.font = 'bold 13px sans-serif'; g.fillText('100 m', 14, hgt - 20);
    },
  };
  const PIN = '<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 28 28"><path d="M14 27C14 27 3 16 3 10a11 11 0 0 1 22 0c0 6-11 17-11 17z" fill="#c4161c" stroke="#fff" stroke-width="2"/><circle cx="14" cy="10" r="4" fill="#fff"/></svg>';

  function ringsOf(geom) {
    if (!geom) return [];
    if (geom.type === 'Polygon') return geom.coordinates;
    if (geom.type === 'MultiPolygon') return geom.coordinates.flat();
    return [];
  }
  function inRing(x, y, ring) {
    let inside = false;
    for (let i = 0, j = ring.length - 1; i < ring.length; j = i++) {
      const [xi, yi] = ring[i], [xj, yj] = ring[j];
      if ((yi > y) !== (yj > y) && x < ((xj - xi) * (y - yi)) / (yj - yi) + xi) inside = !inside;
    }
    return inside;
  }
  function gridAt(lon, lat) {
    for (const f of S.grids || []) {
      const b = f.bbox;
      if (lon < b[0] || lon > b[2] || lat < b[1] || lat > b[3]) continue;
      let inside = false;
      for (const ring of f.rings) if (inRing(lon, lat, ring)) inside = !inside;
      if (inside) return f;
    }
    return null;
  }
  function whereText(lon, lat) {
    const f = gridAt(lon, lat);
    if (!S.grids) return '';
    if (!f) return t('m.place.outside');
    const st = S.names.streets[f.street] || f.street, cm = S.names.communities[f.community] || '';
    return `${st} · ${cm} · ${f.code}`;
  }
  // the nearest 门牌 of the centre's gazetteer (issue 17), asked at most once the map rests 0.6 s
  let nearTimer = null, nearAt = null;
  function nearAddress(lon, lat, el) {
    clearTimeout(nearTimer);
    nearAt = null;  // the last answer was for another point: a report sent now names none
    nearTimer = setTimeout(async () => {
      if (!el.isConnected || lon === null) return;
      try {
        const r = await api(`/m/api/reverse?lon=${lon.toFixed(7)}&lat=${lat.toFixed(7)}`);
        nearAt = r.address ? r.address.address : null;
        el.textContent = r.address ? `${t('m.near')} ${r.address.address} · ${Math.round(r.distance_m)} m` : '';
      } catch (err) { el.textContent = ''; }
    }, 600);
  }
  async function loadCity() {
    try {
      const [cat, names] = await Promise.all([api('/m/api/catalogue'), api('/m/api/district')]);
      S.catalogue = cat;
      S.names = names;
      S.adcode = names.adcode;
      if (names.tz) { S.tz = names.tz; localStorage.setItem('gw.m.tz', names.tz); }
    } catch (err) {
      if (err.status === 401) { revoked(); return; }
    }
    if (S.adcode && !S.grids) {
      try {
        const fc = await (await fetch(`/geo/${S.adcode}/grids.geojson`)).json();
        S.grids = fc.features.map((f) => {
          const rings = ringsOf(f.geometry);
          const xs = rings.flat().map((p) => p[0]), ys = rings.flat().map((p) => p[1]);
          return { code: f.properties.code, street: f.properties.street, community: f.properties.community, rings,
                   bbox: [Math.min(...xs), Math.min(...ys), Math.max(...xs), Math.max(...ys)] };
        });
      } catch (err) { S.grids = null; }
    }
    if (!S.basemap) {  // the centre's own basemap (issue 17), drawn by the server for this daylight map
      try {
        const style = await api('/basemap/style.json');
        const tpl = style.metadata && style.metadata['gridwall:raster'];
        S.basemap = tpl ? { tpl, minzoom: style.metadata['gridwall:raster-minzoom'] || 12, tiles: new Map() } : null;
      } catch (err) { S.basemap = null; }
    }
    render();
  }
  // a basemap tile as an image, fetched with the handset's token; redraws the map when it arrives
  function basemapTile(z, x, y) {
    const bm = S.basemap, key = `${z}/${x}/${y}`;
    if (bm.tiles.has(key)) return bm.tiles.get(key);
    bm.tiles.set(key, null);
    if (bm.tiles.size > 256) bm.tiles.delete(bm.tiles.keys().next().value);  // oldest first
    const url = bm.tpl.replace('{z}', z).replace('{x}', x).replace('{y}', y);
    fetch(url, { headers: { Authorization: `Bearer ${S.token}` } })
      .then((r) => (r.status === 200 ? r.blob() : null))
      .then((b) => (b ? createImageBitmap(b) : null))
      .then((img) => { if (img) { bm.tiles.set(key, img); requestAnimationFrame(() => map.draw()); } })
      .catch(() => bm.tiles.delete(key));  // offline: asked again on a later draw
    return null;
  }
  function classOf(kind, code) {
    for (const major of ((S.catalogue || {}).kinds || {})[kind] || []) {
      for (const c of major.classes) if (c.code === code) return c;
    }
    return null;
  }

  // -- tasks --------------------------------------------------------------------------------------
  async function refreshTasks() {
    try {
      const body = await api('/m/api/tasks');
      S.tasks = body.tasks;
      await tasksSave(S.tasks);
      for (const task of S.tasks) if (!task.acked) ackTask(task);
    } catch (err) {
      if (err.status === 401) { revoked(); return; }
    }
    showTaskCount();
    if (S.screen === 'tasks') render();
  }
  function ackTask(task) {
    task.acked = true;
    enqueue({ kind: 'task_ack', payload: { id: `ta-${task.case_id}-${task.task}`, case_id: task.case_id, task: task.task, at: new Date().toISOString() } }, false);
  }
  function addTask(task) {
    S.tasks = S.tasks.filter((x) => !(x.case_id === task.case_id && x.task === task.task)).concat([task]);
    S.tasks.sort((a, b) => a.deadline.localeCompare(b.deadline));
    tasksSave(S.tasks);
    ackTask(task);
    showTaskCount();
    toast(`${t('m.task.new')}: ${t(`task.${task.task}`)} ${task.case_id}`, 'ok');
    if (S.screen === 'tasks') render();
  }
  function showTaskCount() {
    const b = $('#taskcount');
    b.hidden = S.tasks.length === 0;
    b.textContent = String(S.tasks.length);
  }

  // -- screens ------------------------------------------------------------------------------------
  function go(screen, arg) {
    S.screen = screen;
    S.arg = arg;
    render();
  }
  function render() {
    const main = $('#screen');
    main.replaceChildren();
    applyText();
    $('#tabs').hidden = !S.token;
    if (!S.token) { signin(main); return; }
    document.querySelectorAll('#tabs button').forEach((b) => b.classList.toggle('active', b.dataset.go === S.screen));
    ({ home, report, propose, tasks: taskList, task: taskPage, settings })[S.screen](main, S.arg);
    showGps();
  }

  function signin(main) {
    setNet('off');
    const err = h('p', { id: 'signin-error', class: 'err', role: 'alert' });
    const form = h('form', { onsubmit: async (e) => {
      e.preventDefault();
      const person = $('#person').value.trim(), password = $('#password').value;
      const btn = $('button', form);
      btn.disabled = true;
      err.textContent = '';
      try {
        const resp = await fetch('/m/api/pair', { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ person, password }) });
        const body = await resp.json().catch(() => ({}));
        if (!resp.ok) {
          err.textContent = t(resp.status === 429 ? 'm.signin.limited' : resp.status === 403 ? 'm.signin.role' : 'm.signin.failed');
          return;
        }
        S.token = body.token; S.person = body.person; S.name = body.name || '';
        localStorage.setItem('gw.m.token', S.token);
        localStorage.setItem('gw.m.person', S.person);
        localStorage.setItem('gw.m.name', S.name);
        start();
      } catch (e2) {
        err.textContent = t('m.signin.network');
      } finally { btn.disabled = false; }
    } },
    h('h1', { text: t('m.signin') }),
    h('label', { for: 'person', text: t('m.person') }),
    h('input', { id: 'person', type: 'text', autocomplete: 'username', autocapitalize: 'off', required: true, value: S.person || '' }),
    h('label', { for: 'password', text: t('m.password') }),
    h('input', { id: 'password', type: 'password', autocomplete: 'current-password', required: true }),
    err,
    h('button', { class: 'big', type: 'submit', text: t('m.signin.go') }));
    main.append(form, langSwitch());
  }

  function home(main) {
    const where = h('p', { class: 'where', id: 'where' });
    main.append(h('h1', {}, S.name || S.person || ''), h('p', { class: 'muted' }, S.person || ''));
    const near = h('p', { class: 'muted', id: 'near' });
    map.mount(main, { follow: true, onMove: (lon, lat) => { where.textContent = whereText(lon, lat); nearAddress(lon, lat, near); } });
    main.append(where, near, h('p', { id: 'gps', class: 'muted' }), h('p', { class: 'muted', text: t('m.gps.wgs84') }));
    if (S.pos) { where.textContent = whereText(S.pos.lon, S.pos.lat); nearAddress(S.pos.lon, S.pos.lat, near); }
  }

  // the report form keeps its draft while the user moves between screens
  const draft = { kind: 'event', code: null, condition: null, search: '', open: null, description: '', media: {}, lon: null, lat: null, selfHandled: false,
    object: null, near: [], nearFor: '' };
  // a 部件 report may name its object (issue 18): the nearest ones of the class around the pin, one tap
  async function reportObjects(box) {
    const lon = map.lon, lat = map.lat;
    if (draft.kind !== 'component' || !draft.code || lon === null) { box.replaceChildren(); return; }
    const key = `${draft.code}@${lon.toFixed(4)},${lat.toFixed(4)}`;
    if (draft.nearFor !== key) {
      try {
        const r = await api(`/m/api/components/nearest?class=${draft.code}&lon=${lon.toFixed(7)}&lat=${lat.toFixed(7)}&k=5&max_m=100`);
        draft.near = r.components; draft.nearFor = key;
      } catch (err) { draft.near = []; }
      if (draft.object && !draft.near.some((o) => o.id === draft.object.id)) draft.object = null;
    }
    box.replaceChildren(h('label', { text: t('m.report.object') }), ...(draft.near.length ? draft.near.map((o) => {
      const on = draft.object && draft.object.id === o.id;
      return h('button', { type: 'button', class: on ? 'on' : '', 'data-object': o.id,
        onclick: () => { draft.object = on ? null : o; reportObjects(box); } },
      `${on ? '● ' : '○ '}${o.name || o.id} · ${t(`component.state.${o.state}`)} · ${Math.round(o.distance_m)} m`,
      h('div', { class: 'muted' }, o.id));
    }) : [h('p', { class: 'muted', text: t('m.report.object.none') })]));
  }
  function report(main) {
    const cls = draft.code ? classOf(draft.kind, draft.code) : null;
    main.append(h('h1', { text: t('m.report') }));
    const seg = h('div', { class: 'seg', role: 'group' },
      ...['event', 'component'].map((k) => h('button', { type: 'button', class: draft.kind === k ? 'on' : '', 'data-kind': k,
        onclick: () => { draft.kind = k; draft.code = null; draft.open = null; render(); }, text: t(`kind.${k}`) })));
    main.append(seg);
    // class: search, or a major class, then a minor class
    main.append(h('label', { for: 'cls-search', text: t('m.class') }));
    const search = h('input', { id: 'cls-search', type: 'search', placeholder: t('m.class.search'), value: draft.search });
    const list = h('div', { class: 'classes', id: 'classes' });
    const fill = () => {
      list.replaceChildren();
      const q = draft.search.trim();
      for (const major of ((S.catalogue || {}).kinds || {})[draft.kind] || []) {
        const hits = q ? major.classes.filter((c) => c.name.includes(q) || c.code.startsWith(q) || major.name.includes(q)) : major.classes;
        if (!hits.length) continue;
        if (!q) list.append(h('button', { type: 'button', class: 'major', onclick: () => { draft.open = draft.open === major.code ? null : major.code; fill(); } }, `${major.code} ${major.name}`));
        if (q || draft.open === major.code) {
          for (const c of hits) {
            list.append(h('button', { type: 'button', class: draft.code === c.code ? 'on' : '', 'data-code': c.code,
              onclick: () => { draft.code = c.code; draft.object = null; draft.condition = c.conditions.length ? c.conditions[0].code : null; render(); } },
            `${c.code} ${c.name}`, c.emergency ? h('span', { class: 'tag', text: t('m.emergency') }) : null));
          }
        }
      }
    };
    search.addEventListener('input', () => { draft.search = search.value; fill(); });
    main.append(search);
    if (cls) {
      main.append(h('div', { class: 'card', id: 'picked' },
        h('b', {}, `${cls.code} ${cls.name}`), cls.emergency ? h('span', { class: 'tag', text: t('m.emergency') }) : null,
        h('label', { text: t('m.condition') }),
        h('div', { class: 'classes conditions' },
          ...cls.conditions.map((c) => h('button', { type: 'button', class: c.code === draft.condition ? 'on' : '', 'data-condition': c.code,
            onclick: () => { draft.condition = c.code; render(); } }, `${c.code === draft.condition ? '● ' : '○ '}${c.text}`)))));
      const again = h('button', { type: 'button', class: 'card tap', onclick: () => { draft.code = null; render(); }, text: `↺ ${t('m.class.change')}` });
      main.append(again);
    } else {
      main.append(list);
      fill();
    }
    // place
    main.append(h('label', { text: t('m.place') }));
    const where = h('p', { class: 'where', id: 'where' });
    const near = h('p', { class: 'muted', id: 'near' });
    const objects = h('div', { class: 'classes', id: 'report-objects' });
    map.mount(main, { pin: true, follow: draft.lon === null, lon: draft.lon, lat: draft.lat, onMove: (lon, lat) => {
      if (!map.follow) { draft.lon = lon; draft.lat = lat; }
      where.textContent = whereText(lon, lat);
      nearAddress(lon, lat, near);
      reportObjects(objects);
    } });
    main.append(where, near, h('p', { id: 'gps', class: 'muted' }), objects);
    if (map.lon !== null) { where.textContent = whereText(map.lon, map.lat); nearAddress(map.lon, map.lat, near); }
    reportObjects(objects);
    // words, photos, voice
    main.append(h('label', { for: 'description', text: t('m.description') }),
      h('textarea', { id: 'description', maxlength: '1000', oninput: (e) => { draft.description = e.target.value; } }, draft.description));
    // 自处置: a small matter fixed on the spot, with a photo before (近景) and after (处置后); not for 突发
    const selfOk = cls && !cls.emergency;
    if (!selfOk) draft.selfHandled = false;
    if (selfOk) {
      main.append(h('label', { class: 'card tap self' },
        h('input', { type: 'checkbox', id: 'self-handled', checked: draft.selfHandled,
          onchange: (e) => { draft.selfHandled = e.target.checked; render(); } }),
        ` ${t('m.self')}`));
    }
    const kinds = ['near', 'far', 'reference'].concat(draft.selfHandled ? ['after'] : []);
    const photos = h('div', { class: draft.selfHandled ? 'row2 photos' : 'row3 photos' });
    for (const kind of kinds) {
      const input = h('input', { type: 'file', accept: 'image/*', capture: 'environment', 'data-photo': kind,
        onchange: async (e) => { const f = e.target.files[0]; if (f) { draft.media[kind] = await shrink(f); render(); } } });
      const have = draft.media[kind];
      photos.append(h('label', { class: 'shot' }, input,
        have ? h('img', { src: URL.createObjectURL(have), alt: '' }) : null,
        h('span', {}, `${have ? '✓ ' : '📷 '}${t(`m.photo.${kind}`)}`)));
    }
    main.append(h('label', { text: t('m.photo.take') }), photos);
    main.append(h('label', { for: 'voice', text: t('m.voice') }),
      h('input', { id: 'voice', type: 'file', accept: 'audio/*', capture: true, onchange: (e) => { draft.media.voice = e.target.files[0] || null; } }));
    const send = h('button', { class: 'big red', id: 'send', type: 'button', disabled: !cls, text: t('m.send'), onclick: () => submitReport(send) });
    main.append(send, recentList());
  }
  async function submitReport(btn) {
    const cls = classOf(draft.kind, draft.code);
    const lon = map.lon, lat = map.lat;
    if (!cls || lon === null) { toast(t(cls ? 'm.gps.wait' : 'm.class.pick'), 'err'); return; }
    btn.disabled = true;
    btn.textContent = t('m.sending');
    const id = uid('rep');
    const payload = { id, kind: draft.kind, class_code: cls.code, lon: Math.round(lon * 1e7) / 1e7, lat: Math.round(lat * 1e7) / 1e7,
      crs: 'wgs84', at: new Date().toISOString(), source: 'supervisor' };
    if (draft.condition) payload.condition_code = draft.condition;
    if (draft.kind === 'component' && draft.object) payload.component_id = draft.object.id;  // the object reported
    if (draft.description.trim()) payload.description = draft.description.trim().slice(0, 1000);
    if (nearAt) payload.address = `${t('m.near')} ${nearAt}`.slice(0, 200);  // shown on the case page
    if (draft.selfHandled && !(draft.media.near && draft.media.after)) { btn.disabled = false; btn.textContent = t('m.send'); toast(t('m.self.photos'), 'err'); return; }
    if (draft.selfHandled) payload.self_handled = true;
    const media = ['near', 'far', 'reference', 'after', 'voice'].filter((k) => draft.media[k] && (k !== 'after' || draft.selfHandled))
      .map((k) => ({ kind: k, blob: draft.media[k], ref: null }));
    const r = await enqueue({ kind: 'report', payload, media, label: `${cls.code} ${cls.name}` }, true);
    Object.assign(draft, { code: null, condition: null, search: '', description: '', media: {}, lon: null, lat: null, selfHandled: false,
      object: null, near: [], nearFor: '' });
    if (r === null) toast(t('m.queued'), '');
    else announce(r);
    render();
  }
  function recentList() {
    if (!S.recent.length) return null;
    return h('div', { id: 'recent' }, h('h2', { text: t('m.answered') }),
      ...S.recent.slice(0, 5).map((r) => h('div', { class: 'card' },
        h('span', { class: r.ok ? 'ok' : 'err' }, r.ok ? (r.kind === 'report' ? `${t('m.accepted')} ${r.caseId}` : `${t('m.answered')} ${r.caseId || ''}`) : `${t('m.rejected')}: ${r.reason}`),
        h('div', { class: 'muted' }, r.label || ''))));
  }
  async function shrink(file) {
    try {
      const img = await createImageBitmap(file);
      const scale = Math.min(1, MAX_PX / Math.max(img.width, img.height));
      const c = document.createElement('canvas');
      c.width = Math.round(img.width * scale);
      c.height = Math.round(img.height * scale);
      c.getContext('2d').drawImage(img, 0, 0, c.width, c.height);
      return await new Promise((resolve) => c.toBlob(resolve, 'image/jpeg', 0.85));
    } catch (err) {
      return file; // not an image the browser can read: the server names the refusal
    }
  }

  // -- 部件 proposals (issue 18): a new object, or a move or a state change of one nearby, with a photo;
  // sent through the outbox as the /device event "proposal"; the surveyor's decision comes back in the list
  const STATES = ['破损', '丢失', '占用', '完好', '其他'];
  const pdraft = { action: 'add', code: null, search: '', object: null, near: null, nearFor: '', name: '', state: '破损', note: '', photo: null, lon: null, lat: null };
  function componentClasses() {
    return (((S.catalogue || {}).kinds || {}).component || []).flatMap((m) => m.classes.map((c) => ({ ...c, major: m.name })));
  }
  async function loadNear(box) {
    const at = S.pos || (map.lon !== null ? { lon: map.lon, lat: map.lat } : null);
    const key = `${pdraft.code}@${at ? `${at.lon.toFixed(4)},${at.lat.toFixed(4)}` : ''}`;
    if (!at) { box.replaceChildren(h('p', { class: 'muted', text: t('m.gps.wait') })); return; }
    if (pdraft.nearFor !== key) {
      try {
        const r = await api(`/m/api/components/nearest?class=${pdraft.code}&lon=${at.lon.toFixed(7)}&lat=${at.lat.toFixed(7)}&k=8&max_m=300`);
        pdraft.near = r.components; pdraft.nearFor = key;
      } catch (err) { pdraft.near = []; }
    }
    box.replaceChildren(...(pdraft.near.length ? pdraft.near.map((o) => h('button', { type: 'button', class: pdraft.object && pdraft.object.id === o.id ? 'on' : '', 'data-object': o.id,
      onclick: () => { pdraft.object = o; pdraft.lon = null; pdraft.lat = null; render(); } },
    `${pdraft.object && pdraft.object.id === o.id ? '● ' : '○ '}${o.name || o.id} · ${t(`component.state.${o.state}`)} · ${Math.round(o.distance_m)} m`,
    h('div', { class: 'muted' }, o.id))) : [h('p', { class: 'muted', text: t('m.propose.none_near') })]));
  }
  async function loadMine(box) {
    try {
      const r = await api('/m/api/proposals');
      box.replaceChildren(h('h2', { text: t('m.propose.mine') }), ...(r.proposals.length ? r.proposals.slice(0, 10).map((p) => {
        const cls = classOf('component', p.class_code);
        const tone = p.status === '已采纳' ? 'ok' : p.status === '已退回' ? 'err' : 'muted';
        return h('div', { class: 'card', 'data-number': String(p.number), 'data-status': p.status },
          h('b', {}, `#${p.number} · ${t(`m.propose.${p.action}`)} · ${cls ? cls.name : p.class_code}`),
          h('div', { class: tone }, t(`m.status.${p.status}`), p.reason ? ` · ${p.reason}` : '', p.result_component ? ` · ${p.result_component}` : ''),
          p.component_id ? h('div', { class: 'muted' }, p.component_id) : null);
      }) : [h('p', { class: 'muted', text: t('m.propose.none') })]));
    } catch (err) {
      if (err.status === 401) revoked();
    }
  }
  function propose(main) {
    main.append(h('h1', { text: t('m.propose.title') }));
    main.append(h('div', { class: 'seg three', role: 'group' },
      ...['add', 'move', 'state'].map((a) => h('button', { type: 'button', class: pdraft.action === a ? 'on' : '', 'data-action': a,
        onclick: () => { pdraft.action = a; pdraft.object = null; pdraft.lon = null; pdraft.lat = null; render(); }, text: t(`m.propose.${a}`) }))));
    const cls = pdraft.code ? classOf('component', pdraft.code) : null;
    main.append(h('label', { for: 'prop-search', text: t('m.propose.class') }));
    if (cls) {
      main.append(h('button', { type: 'button', class: 'card tap', id: 'prop-class', onclick: () => { pdraft.code = null; pdraft.object = null; render(); } },
        h('b', {}, `${cls.code} ${cls.name}`), h('span', { class: 'muted' }, `  ↺ ${t('m.class.change')}`)));
    } else {
      const list = h('div', { class: 'classes', id: 'prop-classes' });
      const fill = () => {
        const q = pdraft.search.trim();
        const hits = componentClasses().filter((c) => !q || c.name.includes(q) || c.code.startsWith(q) || c.major.includes(q)).slice(0, 40);
        list.replaceChildren(...hits.map((c) => h('button', { type: 'button', 'data-code': c.code,
          onclick: () => { pdraft.code = c.code; pdraft.object = null; render(); } }, `${c.code} ${c.name}`)));
      };
      const search = h('input', { id: 'prop-search', type: 'search', placeholder: t('m.class.search'), value: pdraft.search,
        oninput: (e) => { pdraft.search = e.target.value; fill(); } });
      main.append(search, list);
      fill();
    }
    if (cls && pdraft.action !== 'add') {
      const near = h('div', { class: 'classes', id: 'prop-near' });
      main.append(h('label', { text: t('m.propose.near') }), near);
      loadNear(near);
    }
    if (pdraft.action === 'add') {
      main.append(h('label', { for: 'prop-name', text: t('m.propose.name') }),
        h('input', { id: 'prop-name', type: 'text', maxlength: '64', value: pdraft.name, oninput: (e) => { pdraft.name = e.target.value; } }));
    }
    if (pdraft.action === 'state') {
      main.append(h('label', { text: t('m.propose.newstate') }), h('div', { class: 'row3 states' },
        ...STATES.map((st) => h('button', { type: 'button', class: `pick ${pdraft.state === st ? 'on' : ''}`, 'data-state': st,
          onclick: () => { pdraft.state = st; render(); } }, t(`component.state.${st}`)))));
    }
    if (pdraft.action !== 'state' && (pdraft.action === 'add' || pdraft.object)) {
      main.append(h('label', { text: t('m.propose.point') }));
      const where = h('p', { class: 'where', id: 'where' });
      const start = pdraft.lon !== null ? [pdraft.lon, pdraft.lat] : pdraft.object ? [pdraft.object.lon, pdraft.object.lat] : [null, null];
      map.mount(main, { pin: true, tap: true, follow: start[0] === null, lon: start[0], lat: start[1],
        marks: pdraft.object ? [{ lon: pdraft.object.lon, lat: pdraft.object.lat }] : [],
        onMove: (lon, lat) => { if (!map.follow) { pdraft.lon = lon; pdraft.lat = lat; } where.textContent = whereText(lon, lat); } });
      main.append(where, h('p', { id: 'gps', class: 'muted' }));
      if (map.lon !== null) where.textContent = whereText(map.lon, map.lat);
    }
    const shot = h('label', { class: 'shot' },
      h('input', { type: 'file', accept: 'image/*', capture: 'environment', 'data-photo': 'proposal',
        onchange: async (e) => { const f = e.target.files[0]; if (f) { pdraft.photo = await shrink(f); render(); } } }),
      pdraft.photo ? h('img', { src: URL.createObjectURL(pdraft.photo), alt: '' }) : null,
      h('span', {}, `${pdraft.photo ? '✓ ' : '📷 '}${t('m.propose.photo')}`));
    main.append(h('label', { text: t('m.propose.photo') }), h('div', { class: 'photos' }, shot),
      h('label', { for: 'prop-note', text: t('m.propose.note') }),
      h('textarea', { id: 'prop-note', maxlength: '500', oninput: (e) => { pdraft.note = e.target.value; } }, pdraft.note));
    const ready = cls && (pdraft.action === 'add' || pdraft.object);
    const send = h('button', { class: 'big red', id: 'propose-send', type: 'button', disabled: !ready, text: t('m.propose.send'), onclick: () => submitProposal(send) });
    const mine = h('div', { id: 'mine' });
    main.append(send, mine);
    loadMine(mine);
  }
  async function submitProposal(btn) {
    const cls = pdraft.code ? classOf('component', pdraft.code) : null;
    if (!cls || (pdraft.action !== 'add' && !pdraft.object)) { toast(t('m.propose.pick'), 'err'); return; }
    if (!pdraft.photo) { toast(t('m.reason.photo_required'), 'err'); return; }
    const payload = { id: uid('prop'), action: pdraft.action, class_code: cls.code, at: new Date().toISOString() };
    if (pdraft.action !== 'state') {
      const lon = map.lon, lat = map.lat;
      if (lon === null) { toast(t('m.gps.wait'), 'err'); return; }
      Object.assign(payload, { lon: Math.round(lon * 1e7) / 1e7, lat: Math.round(lat * 1e7) / 1e7, crs: 'wgs84' });
    } else payload.state = pdraft.state;
    if (pdraft.object) payload.component_id = pdraft.object.id;
    if (pdraft.action === 'add' && pdraft.name.trim()) payload.name = pdraft.name.trim().slice(0, 64);
    if (pdraft.note.trim()) payload.note = pdraft.note.trim().slice(0, 500);
    btn.disabled = true;
    btn.textContent = t('m.sending');
    const label = `${t(`m.propose.${pdraft.action}`)} · ${cls.code} ${cls.name}`;
    const r = await enqueue({ kind: 'proposal', payload, media: [{ kind: 'near', blob: pdraft.photo, ref: null }], label }, true);
    Object.assign(pdraft, { object: null, name: '', note: '', photo: null, lon: null, lat: null, nearFor: '' });
    if (r === null) toast(t('m.queued'), '');
    else announce(r);
    render();
  }

  function taskList(main) {
    main.append(h('h1', { text: t('m.tasks') }));
    if (!S.tasks.length) { main.append(h('p', { class: 'muted', text: t('m.tasks.none') })); return; }
    for (const task of S.tasks) {
      const cls = classOf(task.kind, task.class_code);
      const due = new Date(task.deadline);
      const late = due < new Date();
      const dist = S.pos && task.lon !== null ? Math.round(metres(S.pos.lon, S.pos.lat, task.lon, task.lat)) : null;
      main.append(h('button', { class: 'card tap', type: 'button', 'data-case': task.case_id, onclick: () => go('task', task) },
        h('b', {}, `${t(`task.${task.task}`)} · ${cls ? cls.name : task.class_code}`),
        h('div', { class: 'muted' }, task.case_id),
        h('div', { class: late ? 'err' : 'muted' },
          `${late ? t('m.task.overdue') : t('m.task.deadline')} ${due.toLocaleString(lang === 'zh' ? 'zh-CN' : 'en-GB', { hour12: false, month: 'numeric', day: 'numeric', hour: '2-digit', minute: '2-digit', timeZone: S.tz })}`,
          dist !== null ? ` · ${t('m.task.distance')} ${dist < 1000 ? `${dist} m` : `${(dist / 1000).toFixed(1)} km`}` : '')));
    }
  }
  function taskPage(main, task) {
    const cls = classOf(task.kind, task.class_code);
    main.append(h('button', { class: 'card tap', type: 'button', onclick: () => go('tasks'), text: `← ${t('m.back')}` }),
      h('h1', {}, `${t(`task.${task.task}`)} · ${cls ? cls.name : task.class_code}`),
      h('p', { class: 'muted' }, task.case_id));
    if (task.lon !== null) {
      map.mount(main, { follow: false, lon: task.lon, lat: task.lat, marks: [{ lon: task.lon, lat: task.lat }] });
      map.el.classList.add('small');
      const dist = S.pos ? Math.round(metres(S.pos.lon, S.pos.lat, task.lon, task.lat)) : null;
      const due = new Date(task.deadline);
      main.append(h('p', { class: due < new Date() ? 'err' : 'muted' },
        `${t('m.task.deadline')} ${due.toLocaleString(lang === 'zh' ? 'zh-CN' : 'en-GB', { hour12: false, month: 'numeric', day: 'numeric', hour: '2-digit', minute: '2-digit', timeZone: S.tz })}`,
        dist !== null ? ` · ${t('m.task.distance')} ${dist < 1000 ? `${dist} m` : `${(dist / 1000).toFixed(1)} km`}` : ''));
    }
    if (task.description) main.append(h('p', {}, task.description));
    const opinion = h('textarea', { id: 'opinion', maxlength: '1000' });
    let photo = null;
    const shotKind = task.task === 'check' ? 'after' : 'near';
    const shot = h('label', { class: 'shot' },
      h('input', { type: 'file', accept: 'image/*', capture: 'environment', 'data-photo': 'task',
        onchange: async (e) => { const f = e.target.files[0]; if (f) { photo = await shrink(f); $('span', shot).textContent = `✓ ${t(`m.photo.${shotKind}`)}`; } } }),
      h('span', {}, `📷 ${t(`m.photo.${shotKind}`)}`));
    main.append(h('label', { for: 'opinion', text: t('m.task.opinion') }), opinion,
      h('div', { class: 'photos' }, shot));
    const answer = async (result) => {
      if (!result && task.task === 'check' && !opinion.value.trim()) { toast(t('m.reason.missing_opinion'), 'err'); return; }
      const payload = { id: uid('tr'), case_id: task.case_id, task: task.task, result, at: new Date().toISOString() };
      if (opinion.value.trim()) payload.opinion = opinion.value.trim().slice(0, 1000);
      const media = photo ? [{ kind: 'near', blob: photo, ref: null }] : [];
      S.tasks = S.tasks.filter((x) => !(x.case_id === task.case_id && x.task === task.task));
      tasksSave(S.tasks);
      showTaskCount();
      go('tasks');
      const r = await enqueue({ kind: 'task_result', payload, media, label: `${t(`task.${task.task}`)} ${task.case_id}` }, true);
      if (r === null) toast(t('m.queued'), '');
      else announce(r);
    };
    main.append(h('div', { class: 'row2' },
      h('button', { class: 'big green', type: 'button', 'data-answer': 'true', onclick: () => answer(true), text: t(`m.task.${task.task}.true`) }),
      h('button', { class: 'big red', type: 'button', 'data-answer': 'false', onclick: () => answer(false), text: t(`m.task.${task.task}.false`) })));
  }

  function langSwitch() {
    return h('div', { class: 'seg', role: 'group', 'aria-label': t('m.lang') },
      ...LANGS.map((l) => h('button', { type: 'button', class: l === lang ? 'on' : '', 'data-lang': l,
        onclick: () => { lang = l; localStorage.setItem('gw.m.lang', l); render(); } }, l === 'zh' ? '中文' : 'English')));
  }
  function settings(main) {
    main.append(h('h1', { text: t('m.settings') }),
      h('p', {}, `${S.name || ''} · ${S.person || ''}`),
      h('label', { text: t('m.lang') }), langSwitch(),
      h('p', { class: 'muted', text: t('m.nolock') }),
      h('p', { class: 'muted' }, `${t('m.version')} ${VERSION} · ${t('m.gps.wgs84')}`),
      recentList(),
      h('button', { class: 'big red', type: 'button', id: 'signout', text: t('m.signout'), onclick: () => {
        if (S.socket) { S.socket.close(); S.socket = null; }
        forget();
        render();
      } }));
  }

  // -- start ----------------------------------------------------------------------------------------
  function start() {
    render();
    connect();
    startGps();
    loadCity();
    tasksLoad().then((list) => { if (!S.tasks.length && list.length) { S.tasks = list; showTaskCount(); } }).catch(() => null);
  }
  document.querySelectorAll('#tabs button').forEach((b) => b.addEventListener('click', () => go(b.dataset.go)));
  // the browser knows the network went: stop the socket now (a dead socket would only time out)
  window.addEventListener('offline', () => { if (S.socket) S.socket.disconnect(); S.connected = false; setNet('off'); });
  window.addEventListener('online', () => { if (S.socket && !S.socket.connected) S.socket.connect(); flush(); });
  setInterval(() => { flush(); if (S.screen === 'tasks') render(); }, 5000);
  if ('serviceWorker' in navigator) navigator.serviceWorker.register('/m/sw.js', { scope: '/m/' }).catch(() => null);
  window.gwHandset = { state: S, flush, outboxCount, version: VERSION }; // for tests and support
  showOutbox();
  // a pairing link from the desk's QR code: /m/#pair=<token> (the fragment never reaches a server)
  const paired = /^#pair=([A-Za-z0-9_-]{16,200})$/.exec(location.hash);
  if (paired) {
    history.replaceState(null, '', location.pathname + location.search);
    const token = paired[1];
    fetch('/m/api/me', { headers: { Authorization: `Bearer ${token}` } })
      .then((r) => (r.ok ? r.json() : Promise.reject(new Error(String(r.status)))))
      .then((me) => {
        if (S.socket) { S.socket.close(); S.socket = null; }
        S.token = token; S.person = me.person; S.name = me.name || '';
        localStorage.setItem('gw.m.token', token);
        localStorage.setItem('gw.m.person', S.person);
        localStorage.setItem('gw.m.name', S.name);
        start();
      })
      .catch(() => { render(); const p = $('#signin-error'); if (p) p.textContent = t('m.revoked'); });
  } else if (S.token) start();
  else render();
})();
