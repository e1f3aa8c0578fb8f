// The StackGAN page: generate, variations, explore. No frameworks; names only ever go into
// textContent / attributes (never innerHTML), so a name like <script> stays text.
"use strict";

(function () {
  const $ = (id) => document.getElementById(id);
  const body = document.body;
  const MAX_N = Number(body.dataset.maxN) || 16;
  const MAX_NAME = Number(body.dataset.maxName) || 64;

  const form = $("gen-form");
  const nameInput = $("name");
  const nInput = $("n");
  const seedInput = $("seed");
  const genButton = $("generate");
  const errorBox = $("error");

  // What is on screen: the name and seed the pictures came from.
  const state = { name: null, seed: null, n: 4, images: [], directions: 0, selected: null };

  // -- helpers ---------------------------------------------------------------------------
  function showError(msg) {
    errorBox.textContent = msg;
    errorBox.hidden = !msg;
  }

  async function api(path, payload) {
    let resp;
    try {
      resp = await fetch(path, {
        method: payload === undefined ? "GET" : "POST",
        headers: payload === undefined ? {} : { "Content-Type": "application/json" },
        body: payload === undefined ? undefined : JSON.stringify(payload),
      });
    } catch (e) {
      throw new Error("サーバーに接続できません (cannot reach the server)");
    }
    let data = null;
    try { data = await resp.json(); } catch (e) { /* not JSON */ }
    if (!resp.ok) {
      throw new Error((data && data.error) || `HTTP ${resp.status}`);
    }
    return data;
  }

  function fileName(name, seed, extra) {
    const safe = name.replace(/[\\/:*?"<>|\s]+/g, "_").slice(0, 40);
    return `${safe}-seed${seed}${extra || ""}.png`;
  }

  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === null || v === undefined || v === false) continue;
      if (k === "text") node.textContent = v;
      else if (k === "class") node.className = v;
      else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
      else node.setAttribute(k, v === true ? "" : String(v));
    }
    for (const c of children) if (c) node.append(c);
    return node;
  }

  function parseSeed(text) {
    const t = text.trim().normalize("NFKC");  // full-width digits from an IME become ASCII
    if (t === "") return null;
    if (!/^\d+$/.test(t)) throw new Error("シードは整数で入力してください (seed must be a whole number)");
    return Number(t);
  }

  function updateCount() {
    const len = [...nameInput.value.normalize("NFKC").trim()].length;
    const counter = $("name-count");
    counter.textContent = `${len} / ${MAX_NAME}`;
    counter.classList.toggle("over", len > MAX_NAME);
  }

  // -- IME-friendly input: Enter that confirms a conversion must not submit --------------
  let composing = false;
  nameInput.addEventListener("compositionstart", () => { composing = true; });
  nameInput.addEventListener("compositionend", () => {
    // Safari fires compositionend before the keydown of the confirming Enter.
    setTimeout(() => { composing = false; }, 0);
  });
  nameInput.addEventListener("keydown", (e) => {
    if (e.key === "Enter" && (e.isComposing || composing || e.keyCode === 229)) {
      e.preventDefault();
      e.stopPropagation();
    }
  });
  nameInput.addEventListener("input", updateCount);

  for (const chip of document.querySelectorAll("[data-example]")) {
    chip.addEventListener("click", () => {
      nameInput.value = chip.dataset.example;
      updateCount();
      nameInput.focus();
    });
  }
  $("random-seed").addEventListener("click", () => { seedInput.value = ""; seedInput.focus(); });

  // -- generate ----------------------------------------------------------------------------
  form.addEventListener("submit", (e) => {
    e.preventDefault();
    generate();
  });

  async function generate() {
    showError("");
    let seed, n;
    try {
      seed = parseSeed(seedInput.value);
      n = Number(nInput.value);
      if (!Number.isInteger(n) || n < 1 || n > MAX_N) {
        throw new Error(`枚数は 1〜${MAX_N} です (count must be between 1 and ${MAX_N})`);
      }
    } catch (err) {
      showError(err.message);
      return;
    }
    const payload = { name: nameInput.value, n: n };
    if (seed !== null) payload.seed = seed;
    genButton.disabled = true;
    genButton.classList.add("busy");
    $("status").textContent = "生成中… (generating)";
    try {
      const data = await api("/api/generate", payload);
      state.name = data.name;
      state.seed = data.seed;
      state.n = data.n;
      state.images = data.images;
      renderResults(data);
      updateUrl();
    } catch (err) {
      showError(err.message);
      $("status").textContent = "";
    } finally {
      genButton.disabled = false;
      genButton.classList.remove("busy");
    }
  }

  function pictureCard(img, name, label, extra, onClick) {
    const main = img.stage2 || img.stage1;
    const seedText = img.seed !== undefined ? `seed ${img.seed}` : label;
    const picture = el("img", {
      src: main, class: img.stage2 ? "pic" : "pic pixel", width: 256, height: 256,
      alt: `${name} (${seedText})`, title: onClick ? "クリックでバリエーション (click for variations)" : null,
      loading: "eager",
    });
    const figure = el("figure", { class: "card" + (onClick ? " clickable" : "") });
    const frame = el("div", { class: "frame" }, picture);
    if (onClick) {
      picture.tabIndex = 0;
      picture.addEventListener("click", onClick);
      picture.addEventListener("keydown", (e) => { if (e.key === "Enter") onClick(); });
    }
    if (img.stage2) {
      // stage-I beside the stage-II picture, large on hover.
      frame.append(el("img", { src: img.stage1, class: "stage1 pixel", width: 64, height: 64,
                               alt: "stage-I", title: "stage-I" }));
    }
    const links = el("span", { class: "links" },
      el("a", { href: main, download: fileName(name, img.seed ?? state.seed, extra || ""),
                class: "dl", title: "PNG をダウンロード" , text: "PNG" }));
    if (img.stage2) {
      links.append(el("a", { href: img.stage1, download: fileName(name, img.seed ?? state.seed, (extra || "") + "-stage1"),
                             class: "dl", title: "stage-I の PNG", text: "stage I" }));
    }
    figure.append(frame, el("figcaption", {}, el("span", { class: "seed", text: seedText }), links));
    return figure;
  }

  function renderResults(data) {
    $("results-panel").hidden = false;
    $("results-title").textContent = `「${data.name}」`;
    $("status").textContent = `seed ${data.seed} · ${data.images.length} 枚 · ${Math.round(data.elapsed_ms)} ms`;
    const grid = $("results");
    grid.replaceChildren();
    data.images.forEach((img, i) => {
      const card = pictureCard(img, data.name, `#${i + 1}`, "", () => selectPicture(i));
      const tools = el("div", { class: "card-tools" },
        el("button", { type: "button", class: "ghost small", text: "バリエーション",
                       onclick: () => selectPicture(i) }),
        state.directions > 0 ? el("button", { type: "button", class: "ghost small", text: "探る explore",
                                              onclick: () => openExplore(i) }) : null);
      card.append(tools);
      grid.append(card);
    });
    const list = $("neighbours");
    list.replaceChildren();
    for (const nb of data.neighbours || []) {
      const pct = Math.max(0, Math.min(1, nb.similarity));
      const bar = el("span", { class: "bar" });
      bar.style.width = `${(pct * 100).toFixed(0)}%`;
      list.append(el("li", {},
        el("button", { type: "button", class: "link", text: nb.name, title: "この名前で生成",
                       onclick: () => { nameInput.value = nb.name; updateCount(); generate(); } }),
        el("span", { class: "sim", text: nb.similarity.toFixed(3) }),
        el("span", { class: "bar-wrap" }, bar)));
    }
    $("neighbours-box").hidden = !(data.neighbours && data.neighbours.length);
    const fam = data.familiarity;
    const far = $("far-note");
    if (fam && fam.far) {
      far.textContent = `「${data.name}」は学習した料理から遠い名前です (最も近い「${fam.nearest}」でも cosine ` +
        `${fam.similarity.toFixed(3)}、学習した料理どうしは ${fam.threshold.toFixed(3)} 以上)。絵は近い料理名に引きずられます。` +
        ` This dish is far from anything the model was trained on; the pictures follow the nearest known dishes.`;
      far.hidden = false;
    } else {
      far.hidden = true;
    }
    const partsNote = $("parts-note");
    if (fam && fam.parts) {  // a --parts model: how it read the name
      const shown = Object.entries(fam.parts).map(([slot, v]) => `${slot} ${v === null ? "-" : v === "?" ? "?" : v}`);
      partsNote.textContent = `部品として読んだ名前 (read as parts; ? = unknown): ${shown.join(" · ")}`;
      partsNote.hidden = false;
    } else {
      partsNote.hidden = true;
    }
    $("variations-panel").hidden = true;
    $("explore-panel").hidden = true;
  }

  function updateUrl() {
    const params = new URLSearchParams();
    params.set("name", state.name);
    params.set("seed", String(state.seed));
    if (state.n !== 4) params.set("n", String(state.n));
    history.replaceState(null, "", `${location.pathname}?${params.toString()}`);
  }

  $("copy-link").addEventListener("click", async () => {
    try {
      await navigator.clipboard.writeText(location.href);
      $("copy-link").textContent = "コピーしました";
    } catch (e) {
      window.prompt("このリンクで同じ絵が再現できます", location.href);
    }
  });

  // -- variations ----------------------------------------------------------------------------
  const sigma = $("sigma");
  let variationsTimer = null;

  function selectPicture(i) {
    const img = state.images[i];
    if (!img) return;
    state.selected = { name: state.name, seed: img.seed };
    for (const [j, card] of [...$("results").children].entries()) card.classList.toggle("selected", j === i);
    $("variations-panel").hidden = false;
    loadVariations();
    $("variations-panel").scrollIntoView({ behavior: "smooth", block: "nearest" });
  }

  async function loadVariations() {
    const sel = state.selected;
    if (!sel) return;
    const s = Number(sigma.value);
    $("variations-status").textContent = `seed ${sel.seed} · σ=${s.toFixed(2)} · 生成中…`;
    try {
      const data = await api("/api/variations", { name: sel.name, seed: sel.seed, n: 8, sigma: s });
      if (state.selected !== sel || Number(sigma.value) !== s) return;  // a newer request is coming
      const grid = $("variations");
      grid.replaceChildren();
      data.images.forEach((img, j) => {
        grid.append(pictureCard(img, sel.name, `σ=${s.toFixed(2)} #${j + 1}`, `-s${s.toFixed(2)}-v${j + 1}`, null));
      });
      $("variations-status").textContent = `seed ${sel.seed} · σ=${s.toFixed(2)} · ${Math.round(data.elapsed_ms)} ms`;
    } catch (err) {
      $("variations-status").textContent = "";
      showError(err.message);
    }
  }

  sigma.addEventListener("input", () => {
    $("sigma-out").textContent = Number(sigma.value).toFixed(2);
    clearTimeout(variationsTimer);
    variationsTimer = setTimeout(loadVariations, 250);
  });
  $("close-variations").addEventListener("click", () => {
    $("variations-panel").hidden = true;
    for (const card of $("results").children) card.classList.remove("selected");
  });

  // -- explore ---------------------------------------------------------------------------------
  const explore = { name: null, seed: null, inFlight: false, again: false };

  function buildSliders(k) {
    const box = $("sliders");
    box.replaceChildren();
    const maxOff = Number(body.dataset.maxOffset) || 3;
    for (let d = 0; d < k; d++) {
      const out = el("output", { class: "slider-out", text: "0.0" });
      const input = el("input", { type: "range", min: -maxOff, max: maxOff, step: 0.1, value: 0,
                                  "data-direction": d, "aria-label": `direction ${d + 1}` });
      input.addEventListener("input", () => {
        out.textContent = Number(input.value).toFixed(1);
        requestExplore();
      });
      box.append(el("label", { class: "slider" }, el("span", { text: `方向 ${d + 1}` }), input, out));
    }
  }

  function openExplore(i) {
    const img = state.images[i];
    if (!img) return;
    explore.name = state.name;
    explore.seed = img.seed;
    for (const input of $("sliders").querySelectorAll("input")) {
      input.value = 0;
      input.nextElementSibling.textContent = "0.0";
    }
    $("explore-img").src = img.stage2 || img.stage1;
    $("explore-img").classList.toggle("pixel", !img.stage2);
    $("explore-caption").textContent = `「${explore.name}」 seed ${explore.seed}`;
    $("explore-download").href = img.stage2 || img.stage1;
    $("explore-download").download = fileName(explore.name, explore.seed, "-explore");
    $("explore-panel").hidden = false;
    $("explore-panel").scrollIntoView({ behavior: "smooth", block: "nearest" });
  }

  async function requestExplore() {
    // At most one request in flight; slider moves meanwhile coalesce into one more.
    if (explore.inFlight) { explore.again = true; return; }
    explore.inFlight = true;
    const offsets = [...$("sliders").querySelectorAll("input")].map((x) => Number(x.value));
    $("explore-status").textContent = "描画中…";
    try {
      const data = await api("/api/explore", { name: explore.name, seed: explore.seed, offsets });
      const img = data.images[0];
      $("explore-img").src = img.stage2 || img.stage1;
      $("explore-download").href = img.stage2 || img.stage1;
      $("explore-download").download = fileName(explore.name, explore.seed,
        "-explore-" + offsets.map((o) => o.toFixed(1)).join("_"));
      $("explore-status").textContent = `${Math.round(data.elapsed_ms)} ms`;
    } catch (err) {
      $("explore-status").textContent = "";
      showError(err.message);
    } finally {
      explore.inFlight = false;
      if (explore.again) { explore.again = false; requestExplore(); }
    }
  }

  $("reset-explore").addEventListener("click", () => {
    for (const input of $("sliders").querySelectorAll("input")) {
      input.value = 0;
      input.nextElementSibling.textContent = "0.0";
    }
    requestExplore();
  });
  $("close-explore").addEventListener("click", () => { $("explore-panel").hidden = true; });

  // -- model info + start-up -------------------------------------------------------------------
  function describeModel(info) {
    const parts = [];
    if (info.stages) {
      const sizes = [info.stage1_size, info.stage2_size].filter((s) => s).map((s) => `${s}px`);
      parts.push(`StackGAN ${info.stages} stage${info.stages > 1 ? "s" : ""} (${sizes.join(" → ")})`);
    }
    if (info.text_encoder) parts.push(`text encoder: ${String(info.text_encoder).split("/").pop()}`);
    const t = info.training || {};
    const bits = [];
    if (t.n_images) bits.push(`${t.n_images} photos`);
    if (t.n_names) bits.push(`${t.n_names} dish names`);
    if (bits.length) parts.push(`trained on ${bits.join(", ")}`);
    if (info.step !== null && info.step !== undefined) parts.push(`step ${info.step}`);
    const m = info.metrics;
    if (m && typeof m === "object") {
      const preferred = ["faithfulness_train", "faithfulness_invented", "fid_in_domain", "fid_floor",
                         "diversity_ratio"];
      const keys = preferred.some((k) => typeof m[k] === "number") ? preferred : Object.keys(m);
      const shown = keys
        .filter((k) => typeof m[k] === "number")
        .slice(0, 5)
        .map((k) => `${k.replace(/_/g, " ")} ${Number.isInteger(m[k]) ? m[k] : m[k].toFixed(3)}`);
      if (shown.length) parts.push(shown.join(", "));
    }
    return parts.join(" · ");
  }

  async function start() {
    updateCount();
    try {
      const info = await api("/api/model");
      state.directions = Number(info.explore_directions) || 0;
      buildSliders(state.directions);
      $("model-info").textContent = describeModel(info);
    } catch (err) {
      showError(err.message);
    }
    const params = new URLSearchParams(location.search);
    const name = params.get("name");
    if (name) {
      nameInput.value = name;
      updateCount();
      if (params.get("seed") !== null) seedInput.value = params.get("seed");
      const n = Number(params.get("n"));
      if (Number.isInteger(n) && n >= 1 && n <= MAX_N) nInput.value = n;
      generate();
    }
  }

  start();
})();
