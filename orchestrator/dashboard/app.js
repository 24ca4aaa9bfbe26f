// The dbaas dashboard: polls the orchestrator's public API and draws it.
// Plain JavaScript, no build step; served by the orchestrator at GET /.
/* global console, document, window, fetch, sessionStorage, setTimeout */

const SVG = 'http://www.w3.org/2000/svg';
const $ = (id) => document.getElementById(id);

const state = {
  lastEventSeq: 0,
  events: [],
  knownPids: new Set(),
  token: sessionStorage.getItem('dbaas-admin-token') ?? '',
};

$('token').value = state.token;
$('token').addEventListener('change', (e) => setToken(e.target.value));

function setToken(token) {
  state.token = token.trim();
  $('token').value = state.token;
  if (state.token) sessionStorage.setItem('dbaas-admin-token', state.token);
  else sessionStorage.removeItem('dbaas-admin-token');
}

async function api(method, path, body) {
  const headers = {};
  if (state.token) headers.authorization = `Bearer ${state.token}`;
  if (body !== undefined) headers['content-type'] = 'application/json';
  const res = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  let data;
  try {
    data = await res.json();
  } catch {
    data = undefined;
  }
  return { status: res.status, data };
}

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === 'class') node.className = v;
    else if (k.startsWith('data-')) node.setAttribute(k, v);
    else node[k] = v;
  }
  for (const child of children) node.append(child instanceof window.Node ? child : String(child ?? ''));
  return node;
}

function clock(iso) {
  if (!iso) return '–';
  return new Date(iso).toLocaleTimeString([], { hour12: false });
}

// ------------------------------------------------------------------ workers --

function renderWorkers(workers) {
  const tbody = $('workers').querySelector('tbody');
  const first = state.knownPids.size === 0;
  const rows = workers.map((w) => {
    const fresh = !first && !state.knownPids.has(w.pid);
    const tr = el(
      'tr',
      { class: `${w.role}${fresh ? ' fresh' : ''}`, 'data-pid': String(w.pid), 'data-role': w.role, 'data-state': w.state },
      el('td', { class: 'num pid' }, w.pid),
      el('td', { class: 'role' }, w.role),
      el('td', { class: 'state' }, w.state),
      el('td', { class: 'num seq' }, w.appliedSeq),
      el('td', { class: `num lag${w.lag > 0 ? ' behind' : ''}` }, w.lag),
      el('td', { class: 'id' }, w.id),
      el('td', { class: 'since' }, clock(w.startedAt)),
    );
    return tr;
  });
  tbody.replaceChildren(...rows);
  state.knownPids = new Set(workers.map((w) => w.pid));
  const master = workers.find((w) => w.role === 'master');
  const slaves = workers.filter((w) => w.role === 'slave').length;
  $('summary').textContent = `master pid ${master ? master.pid : 'none'} · ${slaves} slave(s)`;
  $('crash-master').title = master ? `kills pid ${master.pid}` : 'no master';
}

function renderReady(res) {
  const badge = $('ready');
  if (!res) {
    badge.className = 'badge not-ready';
    badge.textContent = 'unreachable';
    return;
  }
  const ready = res.status === 200;
  badge.className = `badge ${ready ? 'ready' : 'not-ready'}`;
  badge.textContent = ready ? 'ready' : 'not ready';
}

function renderAutoscaler(s) {
  $('target-slaves').textContent = String(s.targetSlaves);
  $('reads-in-window').textContent = String(s.readsInWindow);
  if (!s.started) {
    $('window').textContent = `${Math.round(s.intervalMs / 1000)} s, starts at the first read`;
    return;
  }
  const closes = new Date(s.windowOpenedAt).getTime() + s.intervalMs;
  const left = Math.max(0, Math.round((closes - Date.now()) / 1000));
  $('window').textContent = `${Math.round(s.intervalMs / 1000)} s, next decision in ${left} s`;
}

// ------------------------------------------------------------------- events --

function renderEvents(fresh) {
  if (fresh.length === 0) return;
  state.events = [...fresh.reverse(), ...state.events].slice(0, 300);
  state.lastEventSeq = Math.max(state.lastEventSeq, ...fresh.map((e) => e.seq));
  const items = state.events.map((e) =>
    el(
      'li',
      { 'data-kind': e.kind, 'data-seq': String(e.seq) },
      el('time', { dateTime: e.at }, clock(e.at)),
      el('span', { class: `kind ${e.kind}` }, e.kind),
      el('span', { class: 'reason' }, e.reason),
      el('span', { class: 'duration' }, e.durationMs === undefined ? '' : `${e.durationMs} ms`),
    ),
  );
  $('events').replaceChildren(...items);
}

// -------------------------------------------------------------------- chart --

/** A round upper bound for the y axis and a tick step that divides it. */
function niceScale(v) {
  const top = Math.max(v, 1);
  const p = 10 ** Math.floor(Math.log10(top));
  for (const [m, ticks] of [[1, 4], [2, 4], [5, 5], [10, 5]]) {
    if (top <= m * p) return { max: m * p, step: (m * p) / ticks };
  }
  return { max: 10 * p, step: 2 * p };
}

function svg(tag, attrs) {
  const node = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, String(v));
  return node;
}

function renderChart(series) {
  const chart = $('chart');
  // Draw in the element's own pixels, so text is not scaled.
  const W = Math.max(300, Math.round(chart.clientWidth || 720));
  const H = 220;
  chart.setAttribute('viewBox', `0 0 ${W} ${H}`);
  const left = 44;
  const bottom = 20;
  const top = 8;
  const points = series.points;
  const perSecond = (p, kind) => p[kind] / (p.spanMs / 1000);
  const kinds = ['reads', 'writes', 'errors'];
  const { max, step } = niceScale(Math.max(...points.flatMap((p) => kinds.map((k) => perSecond(p, k)))));
  const x = (i) => left + ((W - left - 8) * i) / Math.max(1, points.length - 1);
  const y = (v) => H - bottom - ((H - bottom - top) * v) / max;
  const nodes = [];
  for (let v = 0; v <= max + step / 2; v += step) {
    nodes.push(svg('line', { class: 'grid', x1: left, x2: W - 8, y1: y(v), y2: y(v) }));
    const label = svg('text', { x: left - 6, y: y(v) + 4, 'text-anchor': 'end' });
    label.textContent = String(Number(v.toFixed(2)));
    nodes.push(label);
  }
  const minutes = Math.round((points.length * series.bucketMs) / 60000);
  for (let m = minutes; m >= 0; m -= Math.max(1, Math.round(minutes / 5))) {
    const i = points.length - 1 - (m * 60000) / series.bucketMs;
    const anchor = m === 0 ? 'end' : i <= 0 ? 'start' : 'middle';
    const label = svg('text', { x: x(Math.max(0, i)), y: H - 4, 'text-anchor': anchor });
    label.textContent = m === 0 ? 'now' : `-${m} min`;
    nodes.push(label);
  }
  for (const kind of kinds) {
    const d = points.map((p, i) => `${x(i).toFixed(1)},${y(perSecond(p, kind)).toFixed(1)}`).join(' ');
    nodes.push(svg('polyline', { class: `line ${kind}`, points: d }));
  }
  chart.replaceChildren(...nodes);
  // The last complete bucket: the current one is partial and jumpy.
  const last = points[points.length - 2] ?? points[points.length - 1];
  if (last) {
    $('reads-now').textContent = perSecond(last, 'reads').toFixed(1);
    $('writes-now').textContent = perSecond(last, 'writes').toFixed(1);
    $('errors-now').textContent = perSecond(last, 'errors').toFixed(1);
  }
}

// ------------------------------------------------------------------- drills --

async function crash(role) {
  const result = $('drill-result');
  const master = document.querySelector('#workers tr[data-role="master"]');
  const what = role === 'master' ? `the master${master ? ` (pid ${master.dataset.pid})` : ''}` : 'the slave with the highest pid';
  if (!window.confirm(`Crash drill: kill ${what}? The cluster recovers on its own.`)) return;
  const button = $(`crash-${role}`);
  button.disabled = true;
  result.className = '';
  result.textContent = `killing ${role}…`;
  try {
    for (;;) {
      const res = await api('POST', `/api/v1/crash/${role}`);
      if (res.status === 401 || res.status === 403) {
        const asked = window.prompt(
          res.status === 401 ? 'This cluster needs the admin token for drills:' : 'That token was refused. Admin token:',
          '',
        );
        if (asked === null || asked.trim() === '') {
          result.className = 'error';
          result.textContent = 'cancelled: the admin token is needed';
          return;
        }
        setToken(asked);
        continue;
      }
      if (res.status === 200) {
        result.textContent = `killed ${role} pid ${res.data[0]}; watch the audit log for the recovery`;
      } else {
        result.className = 'error';
        result.textContent = `${res.data?.error?.code ?? res.status}: ${res.data?.error?.message ?? 'failed'}`;
      }
      return;
    }
  } catch (err) {
    result.className = 'error';
    result.textContent = `request failed: ${err.message}`;
  } finally {
    button.disabled = false;
  }
}

$('crash-master').addEventListener('click', () => void crash('master'));
$('crash-slave').addEventListener('click', () => void crash('slave'));

// ------------------------------------------------------------------ polling --

async function refresh() {
  const [workers, scale, ready, events] = await Promise.all([
    api('GET', '/api/v1/workers').catch(() => undefined),
    api('GET', '/api/v1/scale').catch(() => undefined),
    api('GET', '/readyz').catch(() => undefined),
    api('GET', `/api/v1/events?after=${state.lastEventSeq}`).catch(() => undefined),
  ]);
  renderReady(ready);
  if (workers?.status === 200) renderWorkers(workers.data);
  if (scale?.status === 200) renderAutoscaler(scale.data);
  if (events?.status === 200) renderEvents(events.data);
}

// ------------------------------------------------------------------- tables --

function renderTables(tables) {
  const keys = (k) => Object.entries(k).map(([p, d]) => (d === 1 ? p : `${p} desc`)).join(', ');
  const rows = tables.map((t) =>
    el(
      'tr',
      { 'data-table': t.table },
      el('td', { class: 'name' }, t.table),
      el('td', { class: 'num documents' }, t.documents === null ? '?' : `${t.exact ? '' : '~'}${t.documents}`),
      el('td', { class: 'indexes' }, t.indexes.map((i) => `${i.name} (${keys(i.keys)}${i.unique ? ', unique' : ''})`).join('; ') || '–'),
    ),
  );
  $('tables').querySelector('tbody').replaceChildren(...rows);
}

async function refreshTables() {
  const tables = await api('GET', '/api/v1/db/tables').catch(() => undefined);
  if (tables?.status === 200) renderTables(tables.data);
}

async function refreshChart() {
  const stats = await api('GET', '/api/v1/stats').catch(() => undefined);
  if (stats?.status === 200) renderChart(stats.data.rates);
}

function every(ms, fn) {
  const run = async () => {
    try {
      await fn();
    } catch (err) {
      console.error(err);
    } finally {
      setTimeout(run, ms);
    }
  };
  void run();
}

every(1000, refresh);
every(2000, refreshChart);
every(5000, refreshTables);
