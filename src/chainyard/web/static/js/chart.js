// A step-line chart drawn as inline SVG. The live endpoint sends change points (a value holds
// until the next point), so steps, not slopes, show what really happened.

const SVG = "http://www.w3.org/2000/svg";

export const LINES = [
  { key: "ready", label: "ready replicas" },
  { key: "starting", label: "starting" },
  { key: "in_flight", label: "in-flight requests" },
  { key: "queued", label: "queued" },
];

function svg(tag, attrs = {}, ...children) {
  const el = document.createElementNS(SVG, tag);
  for (const [name, value] of Object.entries(attrs)) el.setAttribute(name, String(value));
  for (const child of children) el.append(child);
  return el;
}

function niceMax(value) {
  if (value <= 1) return 1;
  if (value <= 4) return Math.ceil(value);
  const magnitude = 10 ** Math.floor(Math.log10(value));
  for (const step of [1, 2, 2.5, 5, 10]) {
    if (value <= step * magnitude) return step * magnitude;
  }
  return 10 * magnitude;
}

function stepPath(times, values, x, y, end) {
  if (!times.length) return "";
  let d = `M${x(times[0]).toFixed(1)},${y(values[0]).toFixed(1)}`;
  for (let i = 1; i < times.length; i++) {
    d += `H${x(times[i]).toFixed(1)}V${y(values[i]).toFixed(1)}`;
  }
  return `${d}H${x(end).toFixed(1)}`;
}

// series: {t: [...], ready: [...], ...}; now and windowSeconds in seconds.
export function stepChart(series, { now, windowSeconds, title }) {
  const width = 560;
  const height = 170;
  const pad = { left: 34, right: 10, top: 10, bottom: 22 };
  const start = now - windowSeconds;
  const times = series.t.map((t) => Math.max(t, start));
  let top = 0;
  for (const line of LINES) for (const v of series[line.key]) top = Math.max(top, v);
  const yMax = niceMax(top);
  const x = (t) => pad.left + ((t - start) / windowSeconds) * (width - pad.left - pad.right);
  const y = (v) => height - pad.bottom - (v / yMax) * (height - pad.top - pad.bottom);

  const root = svg("svg", {
    class: "chart",
    viewBox: `0 0 ${width} ${height}`,
    role: "img",
    "aria-label": title,
  });
  root.append(svg("title", {}, title));

  const yTicks =
    yMax <= 4 ? Array.from({ length: yMax + 1 }, (_, i) => i) : yMax % 2 ? [0, yMax] : [0, yMax / 2, yMax];
  for (const v of yTicks) {
    root.append(svg("line", { class: "grid-line", x1: pad.left, x2: width - pad.right, y1: y(v), y2: y(v) }));
    root.append(
      svg("text", { class: "axis-label", x: pad.left - 6, y: y(v) + 3, "text-anchor": "end" }, String(v)),
    );
  }
  const minutes = windowSeconds / 60;
  const every = minutes <= 1 ? 15 : minutes <= 5 ? 60 : 120;
  for (let ago = 0; ago <= windowSeconds; ago += every) {
    const tx = x(now - ago);
    const label = ago === 0 ? "now" : ago < 60 ? `-${ago}s` : `-${ago / 60}m`;
    root.append(
      svg("text", { class: "axis-label", x: tx, y: height - 6, "text-anchor": ago === 0 ? "end" : "middle" }, label),
    );
  }
  for (const line of LINES) {
    const values = series[line.key];
    if (!values.some((v) => v > 0) && line.key !== "ready" && line.key !== "in_flight") continue;
    root.append(svg("path", { class: `line ${line.key}`, d: stepPath(times, values, x, y, now) }));
  }
  return root;
}
