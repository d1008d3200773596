/* 城管通's service worker: the app starts from its own cache (offline too); nothing from outside. */
'use strict';
const CACHE = 'gw-m-v3';  // v3: a 部件 report names its object (v2: the 部件 proposal screen)
const SHELL = ['/m/', '/m/app.js', '/m/app.css', '/m/socket.io.min.js', '/m/icon.svg', '/m/manifest.webmanifest'];

self.addEventListener('install', (e) => {
  e.waitUntil(caches.open(CACHE).then((c) => c.addAll(SHELL)).then(() => self.skipWaiting()));
});

self.addEventListener('activate', (e) => {
  e.waitUntil(
    caches.keys()
      .then((keys) => Promise.all(keys.filter((k) => k !== CACHE).map((k) => caches.delete(k))))
      .then(() => self.clients.claim()),
  );
});

// the shell and the map's grids: from the cache at once, refreshed behind (stale while revalidate)
async function cachedFirst(request, key) {
  const cache = await caches.open(CACHE);
  const hit = await cache.match(key, { ignoreSearch: true });
  const fresh = fetch(request).then((resp) => {
    if (resp.ok) cache.put(key, resp.clone());
    return resp;
  });
  if (hit) {
    fresh.catch(() => null);
    return hit;
  }
  return fresh;
}

// what the app reads once and can live with when offline: the network first, else the last copy
async function networkFirst(request) {
  const cache = await caches.open(CACHE);
  try {
    const resp = await fetch(request);
    if (resp.ok) cache.put(request, resp.clone());
    return resp;
  } catch (err) {
    const hit = await cache.match(request);
    if (hit) return hit;
    throw err;
  }
}

self.addEventListener('fetch', (e) => {
  const url = new URL(e.request.url);
  if (e.request.method !== 'GET' || url.origin !== self.location.origin) return;
  const path = url.pathname;
  if (path === '/m' || path === '/m/') {
    e.respondWith(cachedFirst(e.request, '/m/'));
  } else if (SHELL.includes(path) || (path.startsWith('/geo/') && path.endsWith('/grids.geojson'))) {
    e.respondWith(cachedFirst(e.request, path));
  } else if (path === '/m/api/catalogue' || path === '/m/api/district') {
    e.respondWith(networkFirst(e.request));
  }
});
