// atomlens attention viewer: a dependency-free canvas renderer (works offline).
// Reads the structures from the JSON block with id "atomlens-data".
// All text from the data goes into the page through textContent, never as HTML.
// Atoms are drawn in their element's colour; a halo shows the score on a diverging scale
// centred at the neutral value (1 = uniform for attention x N) with a range shared by all
// structures of the page.
"use strict";
(function () {
  const data = JSON.parse(document.getElementById("atomlens-data").textContent);
  const structures = data.structures;
  const scales = data.scales;
  const PALETTE = data.palette;
  const IMAGE_MARGIN = 0.15; // periodic images within this fraction of the cell are drawn
  const MAX_REPEAT = 4;
  const $ = (id) => document.getElementById(id);
  const canvas = $("view");
  const ctx = canvas.getContext("2d");
  const tooltip = $("tooltip");
  const state = {
    index: -1, rotation: tilt(), zoom: 1, showImages: true, highlight: -1,
    drawn: [], drag: null, key: null, repeat: [1, 1, 1], scene: null, geometry: null,
  };

  // What the atoms can be coloured by: the explained method's scores (when it is not
  // attention), global attention x N, and the local attention received per layer.
  function choices(s) {
    const n = s.symbols.length;
    const out = [];
    if (s.method !== "attention") {
      const scale = scales[s.method];
      const values = scale.relative ? s.scores.map((v) => v * n) : s.scores;
      out.push({ key: s.method, label: scale.label, values, raw: s.scores, scale });
    }
    out.push({
      key: "attention", label: scales.attention.label,
      values: s.attention.map((v) => v * n), raw: s.attention, scale: scales.attention,
    });
    (s.local || []).forEach((layer, k) => out.push({
      key: `local-${k + 1}`, label: `local attention, layer ${k + 1}`,
      values: layer, raw: layer, scale: scales.local,
    }));
    return out;
  }
  function shown(s) {
    const list = choices(s);
    return list.find((c) => c.key === state.key) || list[0];
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
  // Position of a value on a scale, from -1 to 1 (0 = neutral).
  function position(scale, v) {
    return Math.min(Math.max((v - scale.centre) / scale.half, -1), 1);
  }
  // The diverging colour at t in [-1, 1]; the same interpolation as display.diverging_colour.
  function diverging(t) {
    const x = (Math.min(Math.max(t, -1), 1) + 1) / 2 * (PALETTE.length - 1);
    const i = Math.min(Math.floor(x), PALETTE.length - 2), f = x - i;
    return PALETTE[i].map((c, k) => Math.floor(c + f * (PALETTE[i + 1][k] - c) + 0.5));
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
  function lattice(s, shift) {
    return [0, 1, 2].map((k) => shift[0] * s.cell[0][k] + shift[1] * s.cell[1][k] + shift[2] * s.cell[2][k]);
  }
  function repeats(s) {
    return s.cell ? state.repeat.map((r, k) => (s.pbc[k] ? r : 1)) : [1, 1, 1];
  }

  // Atoms and bonds to draw. Crystals: the cell's atoms in every repeated cell, then (with
  // periodic images on) images within IMAGE_MARGIN of the repeated cell and the image atoms
  // that bonds leaving the repeated cell lead to, so that no bond ends without an atom.
  // With images off, only bonds between drawn cell atoms are drawn.
  function scene(s) {
    const n = repeats(s);
    const key = `${state.index}|${n}|${state.showImages}`;
    if (state.scene && state.scene.key === key) return state.scene;
    const sites = [], bonds = [], lookup = new Map();
    const inGrid = (t) => t.every((v, k) => v >= 0 && v < n[k]);
    const add = (atom, shift, kind) => {
      const id = `${atom},${shift}`;
      if (!lookup.has(id)) {
        const offset = s.cell ? lattice(s, shift) : [0, 0, 0];
        lookup.set(id, sites.length);
        sites.push({ atom, pos: s.positions[atom].map((v, k) => v + offset[k]), image: kind !== "cell", kind });
      }
      return lookup.get(id);
    };
    const grid = [];
    for (let a = 0; a < n[0]; a++) for (let b = 0; b < n[1]; b++) for (let c = 0; c < n[2]; c++) grid.push([a, b, c]);
    for (const t of grid) s.positions.forEach((_, atom) => add(atom, t, "cell"));
    const images = Boolean(s.cell) && state.showImages;
    if (images) {
      const range = (k) => (s.pbc[k] ? Array.from({ length: n[k] + 2 }, (_, v) => v - 1) : [0]);
      s.fractional.forEach((f, atom) => {
        for (const a of range(0)) for (const b of range(1)) for (const c of range(2)) {
          const t = [a, b, c];
          if (inGrid(t)) continue;
          const inside = t.every((v, k) => f[k] + v >= -IMAGE_MARGIN && f[k] + v <= n[k] + IMAGE_MARGIN);
          if (inside) add(atom, t, "image");
        }
      });
    }
    for (const [i, j, ...shift] of s.bonds) {
      for (const t of grid) {
        const forward = t.map((v, k) => v + shift[k]);
        if (inGrid(forward)) {
          bonds.push([lookup.get(`${i},${t}`), lookup.get(`${j},${forward}`)]);
        } else if (images) {
          bonds.push([lookup.get(`${i},${t}`), add(j, forward, "bonded")]);
        }
        const back = t.map((v, k) => v - shift[k]);
        if (!inGrid(back) && images) bonds.push([add(i, back, "bonded"), lookup.get(`${j},${t}`)]);
      }
    }
    // Fit the view to the (repeated) cell, or to the atoms of a molecule.
    let centre = s.centre, extent = 1;
    if (s.cell) {
      centre = lattice(s, n.map((v) => v / 2));
      for (const a of [0, n[0]]) for (const b of [0, n[1]]) for (const c of [0, n[2]]) {
        const p = lattice(s, [a, b, c]);
        extent = Math.max(extent, Math.hypot(p[0] - centre[0], p[1] - centre[1], p[2] - centre[2]) + 1);
      }
    } else {
      for (const p of sites) {
        extent = Math.max(extent, Math.hypot(p.pos[0] - centre[0], p.pos[1] - centre[1], p.pos[2] - centre[2]) + 1.5);
      }
    }
    state.scene = { key, sites, bonds, centre, extent, n };
    return state.scene;
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
    const view = scene(s);
    const centre = view.centre;
    const scale = (state.zoom * Math.min(width, height)) / (2.1 * view.extent);
    const project = (p) => {
      const r = apply(state.rotation, [p[0] - centre[0], p[1] - centre[1], p[2] - centre[2]]);
      return [width / 2 + scale * r[0], height / 2 - scale * r[1], r[2]];
    };
    if (s.cell) {
      const corners = [];
      for (const a of [0, 1]) for (const b of [0, 1]) for (const c of [0, 1]) {
        corners.push(project(lattice(s, [a * view.n[0], b * view.n[1], c * view.n[2]])));
      }
      ctx.strokeStyle = "#444";
      ctx.lineWidth = 1;
      for (let i = 0; i < 8; i++) for (const bit of [1, 2, 4]) {
        if (!(i & bit)) {
          ctx.beginPath();
          ctx.moveTo(corners[i][0], corners[i][1]);
          ctx.lineTo(corners[i | bit][0], corners[i | bit][1]);
          ctx.stroke();
        }
      }
    }
    ctx.lineWidth = Math.max(1, 0.12 * scale);
    for (const [u, v] of view.bonds) {
      const p = project(view.sites[u].pos), q = project(view.sites[v].pos);
      const faded = view.sites[u].image || view.sites[v].image;
      ctx.strokeStyle = faded ? "rgba(154,154,154,0.35)" : "#9a9a9a";
      ctx.beginPath();
      ctx.moveTo(p[0], p[1]);
      ctx.lineTo(q[0], q[1]);
      ctx.stroke();
    }
    const choice = shown(s);
    const items = view.sites.map((p) => {
      const xy = project(p.pos);
      const t = position(choice.scale, choice.values[p.atom]);
      const radius = 0.5 * scale * s.radii[p.atom];
      return { ...p, x: xy[0], y: xy[1], z: xy[2], t, radius, halo: diverging(t) };
    });
    items.sort((u, v) => u.z - v.z);
    for (const item of items) {
      const alpha = item.image ? 0.35 : 1;
      // halo: the score's colour, wider the further the score is from neutral
      ctx.beginPath();
      ctx.arc(item.x, item.y, Math.max(item.radius * (1.35 + 0.65 * Math.abs(item.t)), 2), 0, 2 * Math.PI);
      ctx.fillStyle = rgb(item.halo, 0.9 * alpha);
      ctx.fill();
      const base = s.elements[s.symbols[item.atom]];
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
      ctx.strokeStyle = item.atom === state.highlight && !item.image ? "#e4002b" : `rgba(60,60,60,${0.6 * alpha})`;
      ctx.lineWidth = item.atom === state.highlight && !item.image ? 3 : 0.75;
      ctx.stroke();
      state.drawn.push(item);
    }
    state.geometry = {
      sites: view.sites.map((p) => ({ atom: p.atom, kind: p.kind, pos: p.pos })),
      bonds: view.bonds.map(([u, v]) => [view.sites[u].pos, view.sites[v].pos]),
      halos: items.filter((i) => !i.image).sort((u, v) => u.atom - v.atom).map((i) => i.halo),
    };
    canvas.dataset.drawnAtoms = String(items.filter((i) => !i.image).length);
    canvas.dataset.drawnImages = String(items.filter((i) => i.image).length);
  }

  function drawColourBar(s) {
    const bar = $("colourbar");
    const g = bar.getContext("2d");
    for (let x = 0; x < bar.width; x++) {
      g.fillStyle = rgb(diverging((2 * x) / (bar.width - 1) - 1), 1);
      g.fillRect(x, 0, 1, bar.height);
    }
    const choice = shown(s);
    const scale = choice.scale;
    $("bar-label").textContent = choice.label;
    $("bar-low").textContent = (scale.clipped ? "≤" : "") + fmt(scale.centre - scale.half);
    $("bar-high").textContent = (scale.clipped ? "≥" : "") + fmt(scale.centre + scale.half);
    $("bar-centre").textContent = `centre ${scale.centre}${scale.relative ? " = uniform" : ""} (range shared by all structures)`;
    const low = Math.min(...choice.values), high = Math.max(...choice.values);
    $("bar-range").textContent = `· here ${fmt(low)} to ${fmt(high)}`;
    const note = $("spread-note");
    const spread = high - low;
    note.hidden = !(scale.relative && spread < data.uniformSpread);
    note.textContent = note.hidden ? "" :
      `Nearly uniform: every atom lies within ${fmt(low)} to ${fmt(high)} × uniform ` +
      `(spread ${(100 * spread).toFixed(1)} %), so the halos are pale.`;
  }

  function fillElements(s) {
    const box = $("elements");
    box.replaceChildren();
    for (const symbol of Object.keys(s.elements).sort()) {
      const item = document.createElement("span");
      const swatch = document.createElement("span");
      swatch.className = "swatch";
      swatch.style.background = rgb(s.elements[symbol], 1);
      item.append(swatch, document.createTextNode(symbol));
      box.appendChild(item);
    }
  }

  function fillTable(s) {
    const body = $("atoms-body");
    body.replaceChildren();
    const choice = shown(s);
    $("score-head").textContent = choice.label.replace(" (1 = uniform)", "");
    const order = choice.values.map((_, i) => i).sort((a, b) => choice.values[b] - choice.values[a] || a - b);
    order.forEach((i, k) => {
      const row = document.createElement("tr");
      row.dataset.atom = String(i);
      const cells = [k + 1, i, s.symbols[i], fmt(choice.values[i]), fmt(s.attention[i]), s.coordination[i]];
      for (const value of cells) {
        const td = document.createElement("td");
        td.textContent = String(value);
        row.appendChild(td);
      }
      row.addEventListener("mouseenter", () => { state.highlight = i; draw(); });
      row.addEventListener("mouseleave", () => { state.highlight = -1; draw(); });
      body.appendChild(row);
    });
  }

  function showDepiction(s) {
    const figure = $("depiction"), image = $("depiction-image"), note = $("depiction-note");
    const d = s.depiction;
    figure.hidden = !d;
    if (!d) return;
    if (d.svg) {
      image.src = `data:image/svg+xml;charset=utf-8,${encodeURIComponent(d.svg)}`;
      image.alt = `2-D depiction of ${s.name}, atoms highlighted by ${scales[s.method].label}`;
      image.hidden = false;
      note.textContent = `2-D depiction (RDKit), atoms numbered as in the table, highlighted by ` +
        `${scales[s.method].label}` + (d.file ? `; file ${d.file}` : "");
    } else {
      image.removeAttribute("src");
      image.alt = "";
      image.hidden = true;
      note.textContent = d.note;
    }
  }

  function select(index) {
    if (index < 0 || index >= structures.length) return;
    state.index = index;
    state.highlight = -1;
    state.scene = null;
    const s = structures[index];
    $("title").textContent = s.name;
    $("formula").textContent = s.formula;
    $("prediction").textContent = `${s.target} = ${fmt(s.value)} ${s.unit}`;
    $("reference").textContent = s.reference === null ? "" :
      ` · reference ${fmt(s.reference)} · error ${fmt(s.error)} ${s.unit}`;
    canvas.setAttribute("aria-label", `3-D view of ${s.name} (arrow keys rotate, + and - zoom)`);
    document.querySelectorAll("#index li").forEach((li) => {
      const on = Number(li.dataset.index) === index;
      li.classList.toggle("selected", on);
      li.setAttribute("aria-selected", String(on));
    });
    $("images-toggle").disabled = !s.cell;
    $("images-toggle").parentElement.hidden = !s.cell;
    $("repeat").hidden = !s.cell;
    ["a", "b", "c"].forEach((axis, k) => { $(`repeat-${axis}`).disabled = !s.cell || !s.pbc[k]; });
    const list = choices(s);
    if (!list.some((c) => c.key === state.key)) state.key = list[0].key;
    const menu = $("colour-by");
    menu.replaceChildren();
    for (const c of list) {
      const option = document.createElement("option");
      option.value = c.key;
      option.textContent = c.label;
      menu.appendChild(option);
    }
    menu.value = state.key;
    menu.disabled = list.length === 1;
    drawColourBar(s);
    fillElements(s);
    fillTable(s);
    showDepiction(s);
    draw();
  }

  function buildIndex() {
    const list = $("index");
    structures.forEach((s, i) => {
      const li = document.createElement("li");
      li.dataset.index = String(i);
      li.dataset.search = `${s.name} ${s.formula}`.toLowerCase();
      li.setAttribute("role", "option");
      li.setAttribute("aria-selected", "false");
      li.tabIndex = -1;
      const name = document.createElement("span");
      name.className = "name";
      name.textContent = s.name;
      const detail = document.createElement("span");
      detail.className = "detail";
      detail.textContent = `${s.formula} · ${fmt(s.value)} ${s.unit}` +
        (s.error === null ? "" : ` · error ${fmt(s.error)}`);
      li.append(name, detail);
      li.addEventListener("click", () => { select(i); focusItem(li); });
      list.appendChild(li);
    });
    if (!structures.some((s) => s.error !== null)) $("sort").querySelector("[value=error]").disabled = true;
    $("count").textContent = `${structures.length} structure(s)`;
  }

  // One item of the list takes part in the tab order (roving tabindex); arrows move focus.
  function visibleItems() {
    return Array.from(document.querySelectorAll("#index li")).filter((li) => !li.hidden);
  }
  function focusItem(li) {
    document.querySelectorAll("#index li").forEach((other) => { other.tabIndex = other === li ? 0 : -1; });
    li.focus();
  }
  function updateTabStop() {
    const items = visibleItems();
    const current = items.find((li) => li.tabIndex === 0) ||
      items.find((li) => li.classList.contains("selected")) || items[0];
    document.querySelectorAll("#index li").forEach((li) => { li.tabIndex = li === current ? 0 : -1; });
  }
  $("index").addEventListener("keydown", (e) => {
    const items = visibleItems();
    const k = items.indexOf(document.activeElement);
    if (k < 0) return;
    const moves = { ArrowDown: k + 1, ArrowUp: k - 1, Home: 0, End: items.length - 1 };
    if (e.key in moves) {
      e.preventDefault();
      focusItem(items[Math.min(Math.max(moves[e.key], 0), items.length - 1)]);
    } else if (e.key === "Enter" || e.key === " ") {
      e.preventDefault();
      select(Number(items[k].dataset.index));
    }
  });

  function sortIndex(by) {
    const list = $("index");
    const magnitude = (s) => (s.error === null ? -Infinity : Math.abs(s.error));
    const keys = {
      input: (a, b) => a - b,
      error: (a, b) => magnitude(structures[b]) - magnitude(structures[a]) || a - b,
      value: (a, b) => structures[b].value - structures[a].value || a - b,
      name: (a, b) => structures[a].name.localeCompare(structures[b].name) || a - b,
    };
    const items = Array.from(list.children);
    items.sort((u, v) => keys[by](Number(u.dataset.index), Number(v.dataset.index)));
    list.append(...items);
    updateTabStop();
    return items.map((li) => Number(li.dataset.index));
  }

  function filter(query) {
    const q = query.trim().toLowerCase();
    let count = 0;
    document.querySelectorAll("#index li").forEach((li) => {
      const match = !q || li.dataset.search.includes(q);
      li.hidden = !match;
      count += match ? 1 : 0;
    });
    $("count").textContent = `${count} of ${structures.length} structure(s)`;
    updateTabStop();
    return count;
  }

  function hover(event) {
    const box = canvas.getBoundingClientRect();
    const x = event.clientX - box.left, y = event.clientY - box.top;
    if (state.drag) {
      rotate(x - state.drag[0], y - state.drag[1]);
      state.drag = [x, y];
      return;
    }
    for (let k = state.drawn.length - 1; k >= 0; k--) {
      const item = state.drawn[k];
      if (Math.hypot(x - item.x, y - item.y) <= Math.max(item.radius, 3)) {
        const s = structures[state.index];
        const choice = shown(s);
        const score = choice.key === "attention" ? "" : ` · ${choice.label} ${fmt(choice.values[item.atom])}`;
        tooltip.textContent = `${s.symbols[item.atom]} ${item.atom}${item.image ? " (image)" : ""}` +
          ` · attention ${fmt(s.attention[item.atom])} (× N ${fmt(s.attention[item.atom] * s.symbols.length)})` +
          `${score} · Voronoi neighbours ${s.coordination[item.atom]}`;
        tooltip.style.left = `${x + 14}px`;
        tooltip.style.top = `${y + 14}px`;
        tooltip.hidden = false;
        return;
      }
    }
    tooltip.hidden = true;
  }

  function rotate(dx, dy) {
    state.rotation = multiply(multiply(rotationY(dx * 0.01), rotationX(-dy * 0.01)), state.rotation);
    draw();
  }
  function zoom(factor) {
    state.zoom = Math.min(Math.max(state.zoom * factor, 0.2), 8);
    draw();
  }
  function setRepeat(values) {
    state.repeat = values.map((v) => Math.min(Math.max(Math.round(Number(v)) || 1, 1), MAX_REPEAT));
    ["a", "b", "c"].forEach((axis, k) => { $(`repeat-${axis}`).value = String(state.repeat[k]); });
    draw();
  }

  // The current view as a PNG file (the canvas at screen resolution).
  function savePng() {
    const s = structures[state.index];
    const link = document.createElement("a");
    link.href = canvas.toDataURL("image/png");
    link.download = `${s.name.replace(/[^A-Za-z0-9_.-]+/g, "_").replace(/^[._]+|[._]+$/g, "") || "structure"}.png`;
    document.body.appendChild(link);
    link.click();
    link.remove();
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
    zoom(Math.exp(-e.deltaY * 0.001));
  }, { passive: false });
  canvas.addEventListener("keydown", (e) => {
    const turns = { ArrowLeft: [-15, 0], ArrowRight: [15, 0], ArrowUp: [0, -15], ArrowDown: [0, 15] };
    if (e.key in turns) rotate(...turns[e.key]);
    else if (e.key === "+" || e.key === "=") zoom(1.15);
    else if (e.key === "-") zoom(1 / 1.15);
    else return;
    e.preventDefault();
  });
  $("search").addEventListener("input", (e) => filter(e.target.value));
  $("sort").addEventListener("change", (e) => sortIndex(e.target.value));
  $("images-toggle").addEventListener("change", (e) => { state.showImages = e.target.checked; draw(); });
  ["a", "b", "c"].forEach((axis) => $(`repeat-${axis}`).addEventListener("change", () => {
    setRepeat(["a", "b", "c"].map((other) => $(`repeat-${other}`).value));
  }));
  $("colour-by").addEventListener("change", (e) => {
    state.key = e.target.value;
    const s = structures[state.index];
    drawColourBar(s);
    fillTable(s);
    draw();
  });
  $("reset").addEventListener("click", () => { state.rotation = tilt(); state.zoom = 1; draw(); });
  $("save-png").addEventListener("click", savePng);
  window.addEventListener("resize", draw);

  buildIndex();
  select(0);
  updateTabStop();
  window.atomlensViewer = {
    count: structures.length,
    select,
    filter,
    sort: (by) => { $("sort").value = by; return sortIndex(by); },
    repeat: (a, b, c) => setRepeat([a, b, c]),
    savePng,
    get selected() { return state.index; },
    colourBy(key) { const m = $("colour-by"); m.value = String(key); m.dispatchEvent(new Event("change")); },
    get drawnAtoms() { return Number(canvas.dataset.drawnAtoms || 0); },
    get drawnImages() { return Number(canvas.dataset.drawnImages || 0); },
    // What the last frame drew: sites (atom, kind: cell/image/bonded, position), bond
    // end points and the halo colour of each cell atom (Cartesian, Angstrom; RGB 0-255).
    get geometry() { return state.geometry; },
  };
})();
