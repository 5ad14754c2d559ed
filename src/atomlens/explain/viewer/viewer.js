// atomlens attention viewer: a dependency-free canvas renderer (works offline).
// Reads the structures from the JSON block with id "atomlens-data".
// All text from the data goes into the page through textContent, never as HTML.
"use strict";
(function () {
  const data = JSON.parse(document.getElementById("atomlens-data").textContent);
  const structures = data.structures;
  const $ = (id) => document.getElementById(id);
  const canvas = $("view");
  const ctx = canvas.getContext("2d");
  const tooltip = $("tooltip");
  const VIRIDIS = [
    [68, 1, 84], [72, 40, 120], [62, 74, 137], [49, 104, 142], [38, 130, 142],
    [31, 158, 137], [53, 183, 121], [109, 205, 89], [180, 222, 44], [253, 231, 37],
  ];
  const state = {
    index: -1, rotation: tilt(), zoom: 1, showImages: true, highlight: -1,
    drawn: [], drag: null, layer: 0,
  };

  // Scores that colour and size the atoms: global attention (layer 0) or the local
  // attention an atom receives in one message-passing layer (1..L), when exported.
  function scores(s) {
    const values = state.layer > 0 && s.local ? s.local[state.layer - 1] : s.attention;
    const low = values.reduce((a, b) => Math.min(a, b), Infinity);
    const high = values.reduce((a, b) => Math.max(a, b), -Infinity);
    return { values, low, high };
  }

  function tilt() {
    const a = -0.45, b = 0.6;
    return multiply(rotationX(a), rotationY(b));
  }
  function rotationX(t) {
    const c = Math.cos(t), s = Math.sin(t);
    return [[1, 0, 0], [0, c, -s], [0, s, c]];
  }
  function rotationY(t) {
    const c = Math.cos(t), s = Math.sin(t);
    return [[c, 0, s], [0, 1, 0], [-s, 0, c]];
  }
  function multiply(a, b) {
    return a.map((row) => [0, 1, 2].map((j) => row[0] * b[0][j] + row[1] * b[1][j] + row[2] * b[2][j]));
  }
  function apply(m, v) {
    return [0, 1, 2].map((i) => m[i][0] * v[0] + m[i][1] * v[1] + m[i][2] * v[2]);
  }
  function colour(t) {
    const x = Math.min(Math.max(t, 0), 1) * (VIRIDIS.length - 1);
    const i = Math.min(Math.floor(x), VIRIDIS.length - 2), f = x - i;
    return VIRIDIS[i].map((c, k) => Math.round(c + f * (VIRIDIS[i + 1][k] - c)));
  }
  function rgb(c, alpha) {
    return `rgba(${c[0]},${c[1]},${c[2]},${alpha})`;
  }
  function shade(c, f) {
    return c.map((v) => Math.round(f > 1 ? v + (255 - v) * (f - 1) : v * f));
  }
  function fmt(x) {
    return Number(x).toPrecision(4);
  }

  // Atoms to draw: the structure's own atoms plus, for crystals, nearby periodic images.
  function sites(s) {
    const out = s.positions.map((p, i) => ({ atom: i, pos: p, image: false }));
    if (s.cell && state.showImages) {
      for (const [atom, a, b, c] of s.images) {
        const shift = [0, 1, 2].map((k) => a * s.cell[0][k] + b * s.cell[1][k] + c * s.cell[2][k]);
        out.push({ atom, pos: s.positions[atom].map((v, k) => v + shift[k]), image: true });
      }
    }
    return out;
  }

  function cellCorners(s) {
    const corners = [];
    for (const a of [0, 1]) for (const b of [0, 1]) for (const c of [0, 1]) {
      corners.push([0, 1, 2].map((k) => a * s.cell[0][k] + b * s.cell[1][k] + c * s.cell[2][k]));
    }
    return corners;
  }

  function draw() {
    const dpr = window.devicePixelRatio || 1;
    const width = canvas.clientWidth, height = canvas.clientHeight;
    canvas.width = Math.round(width * dpr);
    canvas.height = Math.round(height * dpr);
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    ctx.fillStyle = "#ffffff";
    ctx.fillRect(0, 0, width, height);
    state.drawn = [];
    if (state.index < 0) return;
    const s = structures[state.index];
    const points = sites(s);
    const centre = s.centre;
    let extent = 1;
    for (const p of points) {
      const d = Math.hypot(p.pos[0] - centre[0], p.pos[1] - centre[1], p.pos[2] - centre[2]);
      extent = Math.max(extent, d + 1.5);
    }
    const scale = (state.zoom * Math.min(width, height)) / (2.1 * extent);
    const project = (p) => {
      const r = apply(state.rotation, [p[0] - centre[0], p[1] - centre[1], p[2] - centre[2]]);
      return [width / 2 + scale * r[0], height / 2 - scale * r[1], r[2]];
    };
    if (s.cell) {
      const c = cellCorners(s).map(project);
      ctx.strokeStyle = "#444";
      ctx.lineWidth = 1;
      for (let i = 0; i < 8; i++) for (const bit of [1, 2, 4]) {
        if (!(i & bit)) {
          ctx.beginPath();
          ctx.moveTo(c[i][0], c[i][1]);
          ctx.lineTo(c[i | bit][0], c[i | bit][1]);
          ctx.stroke();
        }
      }
    }
    ctx.strokeStyle = "#9a9a9a";
    ctx.lineWidth = Math.max(1, 0.12 * scale);
    for (const [i, j, a, b, c] of s.bonds) {
      const shift = s.cell
        ? [0, 1, 2].map((k) => a * s.cell[0][k] + b * s.cell[1][k] + c * s.cell[2][k])
        : [0, 0, 0];
      const p = project(s.positions[i]);
      const q = project(s.positions[j].map((v, k) => v + shift[k]));
      ctx.beginPath();
      ctx.moveTo(p[0], p[1]);
      ctx.lineTo(q[0], q[1]);
      ctx.stroke();
    }
    const shown = scores(s);
    const span = Math.max(shown.high - shown.low, 1e-12);
    const items = points.map((p) => {
      const xy = project(p.pos);
      const t = (shown.values[p.atom] - shown.low) / span;
      const radius = scale * s.radii[p.atom] * (0.35 + 0.45 * t);
      return { ...p, x: xy[0], y: xy[1], z: xy[2], t, radius };
    });
    items.sort((u, v) => u.z - v.z);
    for (const item of items) {
      const base = colour(item.t);
      const alpha = item.image ? 0.35 : 1;
      const g = ctx.createRadialGradient(
        item.x - 0.35 * item.radius, item.y - 0.35 * item.radius, 0.1 * item.radius,
        item.x, item.y, item.radius);
      g.addColorStop(0, rgb(shade(base, 1.45), alpha));
      g.addColorStop(0.6, rgb(base, alpha));
      g.addColorStop(1, rgb(shade(base, 0.6), alpha));
      ctx.beginPath();
      ctx.arc(item.x, item.y, Math.max(item.radius, 1), 0, 2 * Math.PI);
      ctx.fillStyle = g;
      ctx.fill();
      if (item.atom === state.highlight && !item.image) {
        ctx.strokeStyle = "#e4002b";
        ctx.lineWidth = 3;
        ctx.stroke();
      }
      state.drawn.push(item);
    }
    canvas.dataset.drawnAtoms = String(items.filter((i) => !i.image).length);
    canvas.dataset.drawnImages = String(items.filter((i) => i.image).length);
  }

  function drawColourBar(s) {
    const bar = $("colourbar");
    const g = bar.getContext("2d");
    for (let x = 0; x < bar.width; x++) {
      g.fillStyle = rgb(colour(x / (bar.width - 1)), 1);
      g.fillRect(x, 0, 1, bar.height);
    }
    const shown = scores(s);
    $("bar-label").textContent = state.layer > 0 ? `local attention, layer ${state.layer}` : "attention";
    $("bar-low").textContent = fmt(shown.low);
    $("bar-high").textContent = fmt(shown.high);
  }

  function fillTable(s) {
    const body = $("atoms-body");
    body.replaceChildren();
    const order = s.attention.map((_, i) => i).sort((a, b) => s.rank[a] - s.rank[b]);
    for (const i of order) {
      const row = document.createElement("tr");
      row.dataset.atom = String(i);
      const cells = [s.rank[i], i, s.symbols[i], fmt(s.attention[i]),
        fmt(s.attention[i] * s.symbols.length), s.coordination[i]];
      for (const value of cells) {
        const td = document.createElement("td");
        td.textContent = String(value);
        row.appendChild(td);
      }
      row.addEventListener("mouseenter", () => { state.highlight = i; draw(); });
      row.addEventListener("mouseleave", () => { state.highlight = -1; draw(); });
      body.appendChild(row);
    }
  }

  function select(index) {
    if (index < 0 || index >= structures.length) return;
    state.index = index;
    state.highlight = -1;
    const s = structures[index];
    $("title").textContent = s.name;
    $("formula").textContent = s.formula;
    $("prediction").textContent = `${s.target} = ${fmt(s.value)} ${s.unit}`;
    document.querySelectorAll("#index li").forEach((li) => {
      li.classList.toggle("selected", Number(li.dataset.index) === index);
    });
    $("images-toggle").disabled = !s.cell;
    const layers = s.local ? s.local.length : 0;
    if (state.layer > layers) state.layer = 0;
    const menu = $("colour-by");
    menu.replaceChildren();
    for (let layer = 0; layer <= layers; layer++) {
      const option = document.createElement("option");
      option.value = String(layer);
      option.textContent = layer ? `local attention, layer ${layer}` : "global attention";
      menu.appendChild(option);
    }
    menu.value = String(state.layer);
    menu.disabled = layers === 0;
    drawColourBar(s);
    fillTable(s);
    draw();
  }

  function buildIndex() {
    const list = $("index");
    structures.forEach((s, i) => {
      const li = document.createElement("li");
      li.dataset.index = String(i);
      li.dataset.search = `${s.name} ${s.formula}`.toLowerCase();
      const name = document.createElement("span");
      name.className = "name";
      name.textContent = s.name;
      const detail = document.createElement("span");
      detail.className = "detail";
      detail.textContent = `${s.formula} · ${fmt(s.value)} ${s.unit}`;
      li.append(name, detail);
      li.addEventListener("click", () => select(i));
      list.appendChild(li);
    });
    $("count").textContent = `${structures.length} structure(s)`;
  }

  function filter(query) {
    const q = query.trim().toLowerCase();
    let shown = 0;
    document.querySelectorAll("#index li").forEach((li) => {
      const match = !q || li.dataset.search.includes(q);
      li.hidden = !match;
      shown += match ? 1 : 0;
    });
    $("count").textContent = `${shown} of ${structures.length} structure(s)`;
    return shown;
  }

  function hover(event) {
    const box = canvas.getBoundingClientRect();
    const x = event.clientX - box.left, y = event.clientY - box.top;
    if (state.drag) {
      const dx = x - state.drag[0], dy = y - state.drag[1];
      state.rotation = multiply(multiply(rotationY(dx * 0.01), rotationX(-dy * 0.01)), state.rotation);
      state.drag = [x, y];
      draw();
      return;
    }
    for (let k = state.drawn.length - 1; k >= 0; k--) {
      const item = state.drawn[k];
      if (Math.hypot(x - item.x, y - item.y) <= Math.max(item.radius, 3)) {
        const s = structures[state.index];
        const local = state.layer > 0 && s.local
          ? ` · layer ${state.layer} ${fmt(s.local[state.layer - 1][item.atom])}` : "";
        tooltip.textContent = `${s.symbols[item.atom]} ${item.atom}${item.image ? " (image)" : ""}` +
          ` · attention ${fmt(s.attention[item.atom])} · rank ${s.rank[item.atom]}` +
          ` · CN ${s.coordination[item.atom]}${local}`;
        tooltip.style.left = `${x + 14}px`;
        tooltip.style.top = `${y + 14}px`;
        tooltip.hidden = false;
        return;
      }
    }
    tooltip.hidden = true;
  }

  canvas.addEventListener("mousedown", (e) => {
    const box = canvas.getBoundingClientRect();
    state.drag = [e.clientX - box.left, e.clientY - box.top];
  });
  window.addEventListener("mouseup", () => { state.drag = null; });
  canvas.addEventListener("mousemove", hover);
  canvas.addEventListener("mouseleave", () => { tooltip.hidden = true; });
  canvas.addEventListener("wheel", (e) => {
    e.preventDefault();
    state.zoom = Math.min(Math.max(state.zoom * Math.exp(-e.deltaY * 0.001), 0.2), 8);
    draw();
  }, { passive: false });
  $("search").addEventListener("input", (e) => filter(e.target.value));
  $("images-toggle").addEventListener("change", (e) => { state.showImages = e.target.checked; draw(); });
  $("colour-by").addEventListener("change", (e) => {
    state.layer = Number(e.target.value);
    drawColourBar(structures[state.index]);
    draw();
  });
  $("reset").addEventListener("click", () => { state.rotation = tilt(); state.zoom = 1; draw(); });
  window.addEventListener("resize", draw);

  buildIndex();
  select(0);
  window.atomlensViewer = {
    count: structures.length,
    select,
    filter,
    get selected() { return state.index; },
    colourBy(layer) { const m = $("colour-by"); m.value = String(layer); m.dispatchEvent(new Event("change")); },
    get drawnAtoms() { return Number(canvas.dataset.drawnAtoms || 0); },
    get drawnImages() { return Number(canvas.dataset.drawnImages || 0); },
  };
})();
