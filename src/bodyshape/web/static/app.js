// The bodyshape page: pick or drop two photos, POST them to /api/predict, show the result.
// Everything the server sends is inserted as text (textContent), never as HTML.

const $ = (selector) => document.querySelector(selector);
const API = "/api/v1";
const CM_PER_INCH = 2.54;
const TYPES = ["image/jpeg", "image/png"];

const state = { front: null, side: null, maxBytes: 20 * 1024 * 1024, busy: false };
const previews = {};

function showError(message) {
  const box = $("#error");
  box.textContent = message;
  box.hidden = !message;
  if (message) box.scrollIntoView({ behavior: "smooth", block: "nearest" });
}

// "womens_tops" -> "Women's tops"
const garmentLabel = (name) => label(name).replace(/^(Wom|M)ens /, "$1en's ");

function label(name) {
  const words = name.replace(/_cm$/, "").replace(/_/g, " ");
  return words.charAt(0).toUpperCase() + words.slice(1);
}

// ---- file selection ------------------------------------------------------------------------

function setFile(view, file) {
  const zone = document.querySelector(`.drop[data-view="${view}"]`);
  if (!file) return;
  const looksImage = TYPES.includes(file.type) || /\.(jpe?g|png)$/i.test(file.name);
  if (!looksImage) {
    showError(`The ${view} photo must be a JPEG or PNG image (got ${file.name}).`);
    return;
  }
  if (file.size > state.maxBytes) {
    const mb = (state.maxBytes / 1048576).toFixed(0);
    showError(`The ${view} photo is larger than ${mb} MB; please use a smaller image.`);
    return;
  }
  showError("");
  state[view] = file;
  if (previews[view]) URL.revokeObjectURL(previews[view]);
  previews[view] = URL.createObjectURL(file);
  const img = zone.querySelector(".preview");
  img.src = previews[view];
  img.hidden = false;
  zone.classList.add("has-file");
  zone.querySelector(".drop-file").textContent = file.name;
}

for (const zone of document.querySelectorAll(".drop")) {
  const view = zone.dataset.view;
  const input = zone.querySelector("input");
  input.addEventListener("change", () => setFile(view, input.files[0]));
  zone.addEventListener("dragover", (e) => {
    e.preventDefault();
    zone.classList.add("dragging");
  });
  zone.addEventListener("dragleave", () => zone.classList.remove("dragging"));
  zone.addEventListener("drop", (e) => {
    e.preventDefault();
    zone.classList.remove("dragging");
    setFile(view, e.dataTransfer.files[0]);
  });
}
// A file dropped beside the zones must not make the browser navigate away to it.
window.addEventListener("dragover", (e) => e.preventDefault());
window.addEventListener("drop", (e) => e.preventDefault());

// ---- progress ------------------------------------------------------------------------------

let timer = null;

function setBusy(busy, text = "") {
  state.busy = busy;
  $("#submit").disabled = busy;
  $("#progress").hidden = !busy;
  $("#progress-text").textContent = text;
  clearInterval(timer);
}

function measuring() {
  const started = performance.now();
  const update = () => {
    const s = ((performance.now() - started) / 1000).toFixed(0);
    $("#progress-text").textContent =
      `Measuring: finding the person and fitting the body… ${s} s`;
  };
  update();
  timer = setInterval(update, 500);
}

// ---- results -------------------------------------------------------------------------------

function render(result) {
  const tbody = $("#measurements tbody");
  tbody.replaceChildren();
  for (const [name, cm] of Object.entries(result.measurements)) {
    const row = document.createElement("tr");
    row.dataset.name = name;
    for (const text of [label(name), cm.toFixed(1), (cm / CM_PER_INCH).toFixed(1)]) {
      const cell = document.createElement("td");
      cell.textContent = text;
      row.append(cell);
    }
    tbody.append(row);
  }

  renderSizes(result.sizes || []);

  const q = result.quality;
  $("#iou").textContent =
    `IoU front ${q.iou_front.toFixed(2)} · side ${q.iou_side.toFixed(2)}`;
  $("#overlay").src = result.urls.overlay;

  const warnings = $("#warnings");
  const list = warnings.querySelector("ul");
  list.replaceChildren(...q.warnings.map((w) => {
    const item = document.createElement("li");
    item.textContent = w;
    return item;
  }));
  warnings.hidden = q.warnings.length === 0;

  $("#dl-obj").href = result.urls.obj;
  $("#dl-glb").href = result.urls.glb;
  $("#dl-json").href = result.urls.json;
  $("#dl-overlay").href = result.urls.overlay;
  const expires = new Date(result.expires_at);
  $("#expires").textContent = `The files stay available until ${expires.toLocaleString()}.`;

  const viewer = $("#viewer");
  viewer.removeAttribute("data-loaded");
  viewer.src = result.urls.glb;
  $("#results").hidden = false;
}

function renderSizes(sizes) {
  const tbody = $("#sizes tbody");
  tbody.replaceChildren();
  for (const rec of sizes) {
    const row = document.createElement("tr");
    row.dataset.garment = rec.garment;
    let size = rec.size;
    if (rec.between) size += ` (between ${rec.between[0]} and ${rec.between[1]})`;
    if (rec.confidence !== null) size += ` · ${Math.round(100 * rec.confidence)} % sure`;
    if (rec.outside_chart) size += " · outside the chart";
    const fits = rec.fits.map((f) => `${label(f.measurement.replace(/_in$/, "_cm"))} ${f.fit}`);
    for (const text of [garmentLabel(rec.garment), size, fits.join(", ")]) {
      const cell = document.createElement("td");
      cell.textContent = text;
      row.append(cell);
    }
    tbody.append(row);
  }
  $("#sizes-card").hidden = sizes.length === 0;
}

const viewer = $("#viewer");
// The mesh has no colour of its own (white): give it a matte blue-grey that stands out
// against the light background.
const BODY_COLOUR = [0.3, 0.4, 0.58, 1];
viewer.addEventListener("load", () => {
  for (const material of viewer.model?.materials ?? []) {
    material.pbrMetallicRoughness.setBaseColorFactor(BODY_COLOUR);
    material.pbrMetallicRoughness.setMetallicFactor(0);
    material.pbrMetallicRoughness.setRoughnessFactor(0.75);
  }
  viewer.setAttribute("data-loaded", "true");
});
viewer.addEventListener("error", () => showError("The 3D viewer could not show the mesh; " +
  "the downloads still work."));

// ---- submit --------------------------------------------------------------------------------

function submit(event) {
  event.preventDefault();
  if (state.busy) return;
  const height = parseFloat($("#height").value);
  if (!state.front || !state.side) {
    showError("Please choose both a front and a side photo.");
    return;
  }
  if (!(height >= 50 && height <= 250)) {
    showError("Please enter the height in centimeters (50 to 250).");
    return;
  }
  showError("");
  const form = new FormData();
  form.append("front", state.front, state.front.name);
  form.append("side", state.side, state.side.name);
  form.append("height_cm", String(height));
  form.append("sex", $("#sex").value);
  form.append("weight_kg", $("#weight").value.trim());
  form.append("fit_pose", $("#fit-pose").checked ? "true" : "false");
  if ($("#size-chart").value) form.append("size_chart", $("#size-chart").value);

  const xhr = new XMLHttpRequest();
  xhr.open("POST", `${API}/predict`);
  xhr.responseType = "json";
  setBusy(true, "Uploading…");
  xhr.upload.addEventListener("progress", (e) => {
    if (e.lengthComputable) {
      $("#progress-text").textContent = `Uploading… ${Math.round(100 * e.loaded / e.total)} %`;
    }
  });
  xhr.upload.addEventListener("load", measuring);
  xhr.addEventListener("load", () => {
    setBusy(false);
    const body = xhr.response;
    if (xhr.status === 200 && body) {
      render(body);
      $("#results").scrollIntoView({ behavior: "smooth", block: "start" });
    } else {
      showError((body && body.error) || `The server answered ${xhr.status} ${xhr.statusText}.`);
    }
  });
  xhr.addEventListener("error", () => {
    setBusy(false);
    showError("The server could not be reached, or it refused the upload (too large?).");
  });
  xhr.send(form);
}

$("#form").addEventListener("submit", submit);

// The server's limits (the page works with the defaults if this fails).
fetch(`${API}/health`).then((r) => r.json()).then((health) => {
  if (health.max_upload_mb) state.maxBytes = health.max_upload_mb * 1024 * 1024;
}).catch(() => {});

// The shipped size charts, as choices.
fetch(`${API}/size-charts`).then((r) => r.json()).then((body) => {
  for (const name of Object.keys(body.charts)) {
    const option = document.createElement("option");
    option.value = name;
    option.textContent = garmentLabel(name);
    $("#size-chart").append(option);
  }
}).catch(() => {});
