// An environment: what it serves now, what is being promoted into it, per chainlet its settings
// and live figures, and plots. Polls once a second, so a promotion is seen through to its end
// without a reload.

import { api } from "../api.js";
import { LINES, stepChart } from "../chart.js";
import { h, isFailure, notice, replace, shortId, statusBadge, table, when } from "../dom.js";
import { changeAutoscaling, changeInstanceType } from "./settings-dialogs.js";

const POLL_MS = 1000;
const WINDOWS = [
  [60, "1 min"],
  [300, "5 min"],
  [600, "10 min"],
];
const STEPS = [
  ["BUILDING", "building"],
  ["DEPLOYING", "deploying"],
  ["ACTIVE", "ready"],
  ["PROMOTED", "promoted"],
];

function stepIndex(status) {
  if (status === "PROMOTED") return 3;
  if (status === "ACTIVE") return 2;
  if (status === "BUILDING") return 0;
  return 1;
}

function steps(status) {
  const at = stepIndex(status);
  return h(
    "div",
    { class: "steps" },
    STEPS.map(([, label], i) => h("span", { class: i < at ? "done" : i === at ? "now" : "" }, label)),
  );
}

function autoscalingSummary(s) {
  if (!s) return h("span", { class: "muted" }, "—");
  return `${s.min_replica}–${s.max_replica} · ${s.concurrency_target}/replica`;
}

export async function environmentView(ctx, main, chainId, envName) {
  const [chain, catalogue] = await Promise.all([api.chain(chainId), api.instanceTypes()]);
  if (!ctx.alive) return;
  ctx.crumbs(["Chains", "#/"], [chain.name, `#/chains/${chainId}`], [envName]);

  const state = {
    env: null,
    live: null,
    // The promotion being watched: {id, from, status, outcome: null | "promoted" | "failed"}.
    promotion: null,
    flash: null,
    windowSeconds: 300,
    busy: false,
    // Bumped by each change made here: a poll that began before it may bring older data.
    epoch: 0,
  };

  const flashBox = h("div", {});
  const errorBox = h("div", {});
  const banner = h("div", {});
  const cards = h("div", { class: "grid2" });
  const chainlets = h("div", {});
  const charts = h("div", { class: "charts" });
  const windowSelect = h(
    "select",
    { "aria-label": "Plot window", "data-testid": "plot-window" },
    WINDOWS.map(([s, label]) => h("option", { value: s, selected: s === state.windowSeconds }, label)),
  );
  windowSelect.addEventListener("change", () => {
    state.windowSeconds = Number(windowSelect.value);
    refresh();
  });
  replace(
    main,
    h("h1", {}, `${chain.name} · `, h("span", { "data-testid": "environment-name" }, envName)),
    h("p", { class: "subtitle" }, "Environment of chain ", shortId(chainId), ". Updates every second."),
    flashBox,
    errorBox,
    banner,
    cards,
    h("h2", {}, "Chainlets"),
    chainlets,
    h("div", { class: "toolbar" }, h("h2", {}, "Replicas and requests"), h("span", { class: "spacer" }), windowSelect),
    charts,
  );

  function flash(kind, text) {
    state.flash = text ? { kind, text } : null;
    replace(flashBox, state.flash ? notice(state.flash.kind, state.flash.text) : null);
    if (state.flash) flashBox.firstChild.dataset.testid = "flash";
  }

  async function observePromotion(env) {
    const candidate = env.candidate_deployment;
    const current = env.current_deployment;
    if (candidate) {
      if (!state.promotion || state.promotion.id !== candidate.id) {
        state.promotion = { id: candidate.id, from: current ? current.id : null, outcome: null };
      }
      state.promotion.status = candidate.status;
      state.promotion.outcome = null;
      return;
    }
    const p = state.promotion;
    if (!p || p.outcome) return;
    if (current && current.id === p.id) {
      p.outcome = "promoted";
      p.status = "PROMOTED";
      return;
    }
    // The candidate is gone and something else serves. Only a failed (or deleted) deployment ends
    // the watch: one still on its way is an environment read from before the promotion began.
    try {
      const d = await api.deployment(chainId, p.id);
      p.status = d.status;
    } catch {
      p.status = "DELETED";
    }
    if (p.status === "DELETED" || isFailure(p.status)) p.outcome = "failed";
  }

  function renderBanner() {
    const p = state.promotion;
    if (!p) return replace(banner);
    const link = h("a", { href: `#/chains/${chainId}/deployments/${p.id}`, "data-testid": "promotion-deployment" }, p.id);
    let box;
    if (!p.outcome) {
      box = notice("busy", h("strong", {}, "Promoting deployment "), link, ` into ${envName}: `, p.status, steps(p.status));
    } else if (p.outcome === "promoted") {
      box = notice(
        "ok",
        h("strong", {}, "Deployment "),
        link,
        h("strong", {}, ` was promoted: it now serves ${envName}.`),
        p.from ? ` It replaced ${p.from}.` : "",
        steps("PROMOTED"),
      );
    } else {
      box = notice(
        "error",
        h("strong", {}, "Deployment "),
        link,
        h("strong", {}, " was not promoted "),
        `(${p.status}). `,
        p.from ? `${envName} stays on ${p.from}. ` : "",
        "Its chainlets' logs say why.",
      );
    }
    box.dataset.testid = "promotion-banner";
    box.dataset.state = p.outcome || "in-progress";
    box.dataset.deploymentId = p.id;
    replace(banner, box);
  }

  function deploymentCard(role, d, liveDeployment) {
    const testid = `${role}-deployment`;
    if (!d) {
      return h(
        "section",
        { class: "panel deployment-card", "data-testid": testid },
        h("h3", {}, role === "current" ? "Current deployment" : "Being promoted"),
        h("p", { class: "empty" }, role === "current" ? "Nothing is deployed here yet." : "No promotion running."),
      );
    }
    const figures = new Map((liveDeployment ? liveDeployment.chainlets : []).map((c) => [c.id, c]));
    const rows = d.chainlets.map((c) => {
      const f = figures.get(c.id);
      return h(
        "tr",
        { "data-chainlet": c.name },
        h("td", {}, h("a", { href: `#/chains/${chainId}/deployments/${d.id}/chainlets/${c.id}/logs` }, c.name)),
        h("td", {}, statusBadge(c.status)),
        h("td", {}, f ? f.instance_type_id : c.instance_type_name),
        h("td", { class: "num" }, f ? `${f.replicas_ready}/${f.replicas_desired}` : String(c.active_replica_count)),
      );
    });
    return h(
      "section",
      { class: `panel deployment-card ${role}`, "data-testid": testid, "data-deployment-id": d.id },
      h(
        "h3",
        {},
        h("span", {}, role === "current" ? "Current deployment" : "Being promoted"),
        statusBadge(d.status, `${testid}-status`),
      ),
      h(
        "p",
        {},
        h("a", { href: `#/chains/${chainId}/deployments/${d.id}`, "data-testid": `${testid}-id` }, d.id),
        h("span", { class: "muted" }, ` · created ${when(d.created_at)}`),
      ),
      table(["Chainlet", "Status", "Instance type", ["Ready/desired", "num"]], rows),
    );
  }

  function chainletTable(env, live) {
    const current = env.current_deployment;
    const liveCurrent = live && live.deployments.find((d) => d.role === "current");
    const byName = new Map((liveCurrent ? liveCurrent.chainlets : []).map((c) => [c.name, c]));
    const runningType = new Map((current ? current.chainlets : []).map((c) => [c.name, c]));
    const rows = env.chainlet_settings.map((s) => {
      const f = byName.get(s.chainlet_name);
      const running = runningType.get(s.chainlet_name);
      const differs = f && f.instance_type_id !== s.instance_type.id;
      return h(
        "tr",
        { "data-testid": "env-chainlet-row", "data-chainlet": s.chainlet_name },
        h("td", {}, s.chainlet_name),
        h("td", {}, running ? statusBadge(running.status, "chainlet-status") : h("span", { class: "muted" }, "—")),
        h(
          "td",
          { "data-testid": "chainlet-instance-type" },
          h("code", {}, s.instance_type.id),
          differs ? h("span", { class: "muted" }, ` (running: ${f.instance_type_id})`) : null,
        ),
        h(
          "td",
          { class: "num", "data-testid": "chainlet-replicas" },
          f ? `${f.replicas_ready}/${f.replicas_desired}` : "—",
          f && f.replicas_starting ? h("span", { class: "muted" }, ` (+${f.replicas_starting} starting)`) : null,
        ),
        h("td", { class: "num", "data-testid": "chainlet-in-flight" }, f ? String(f.in_flight + f.queued) : "—"),
        h("td", {}, autoscalingSummary(s.autoscaling_settings)),
        h(
          "td",
          { class: "actions" },
          h(
            "button",
            { type: "button", class: "small", "data-testid": "change-instance-type", disabled: state.busy, onclick: () => onInstanceType(s) },
            "Instance type…",
          ),
          h(
            "button",
            { type: "button", class: "small ghost", "data-testid": "change-autoscaling", disabled: state.busy, onclick: () => onAutoscaling(s) },
            "Autoscaling…",
          ),
        ),
      );
    });
    return table(
      ["Chainlet", "Status", "Instance type", ["Ready/desired", "num"], ["Requests", "num"], "Autoscaling", ""],
      rows,
      { empty: "No chainlet settings in this environment yet.", testid: "env-chainlets" },
    );
  }

  function chartCards(live) {
    const out = [];
    for (const d of live.deployments) {
      for (const c of d.chainlets) {
        const last = (key) => c.series[key][c.series[key].length - 1] ?? 0;
        out.push(
          h(
            "section",
            { class: "panel chart-card", "data-testid": "chainlet-chart", "data-chainlet": c.name, "data-role": d.role },
            h("h3", {}, c.name, h("small", {}, `${d.role} · ${d.id}`)),
            stepChart(c.series, {
              now: live.now,
              windowSeconds: live.window_seconds,
              title: `${c.name}: replicas and requests over the last ${live.window_seconds / 60} minutes`,
            }),
            h(
              "div",
              { class: "legend" },
              LINES.map((line) => h("span", { class: line.key }, `${line.label} `, h("b", {}, String(last(line.key))))),
            ),
          ),
        );
      }
    }
    return out.length ? out : [h("p", { class: "empty" }, "Nothing deployed, nothing to plot.")];
  }

  function render() {
    const { env, live } = state;
    if (!env) return;
    renderBanner();
    const liveOf = (role) => live && live.deployments.find((d) => d.role === role);
    replace(
      cards,
      deploymentCard("current", env.current_deployment, liveOf("current")),
      deploymentCard("candidate", env.candidate_deployment, liveOf("candidate")),
    );
    replace(chainlets, chainletTable(env, live));
    if (live) replace(charts, chartCards(live));
  }

  async function refresh() {
    const epoch = state.epoch;
    try {
      const [env, live] = await Promise.all([
        api.environment(chainId, envName),
        api.live(chainId, envName, state.windowSeconds),
      ]);
      if (!ctx.alive || epoch !== state.epoch) return;
      state.env = env;
      state.live = live;
      await observePromotion(env);
      replace(errorBox);
      render();
    } catch (err) {
      if (ctx.alive) replace(errorBox, notice("error", err.message));
    }
  }

  async function act(action) {
    state.busy = true;
    render();
    try {
      await action();
    } catch (err) {
      flash("error", err.message);
    } finally {
      state.busy = false;
      state.epoch += 1;
      await refresh();
    }
  }

  function onInstanceType(setting) {
    return act(async () => {
      const answer = await changeInstanceType({ chainId, env: state.env, setting, types: catalogue.instance_types });
      if (!answer) return;
      if (answer.unchanged) return flash("ok", `${setting.chainlet_name} already runs on that instance type.`);
      if (answer.requires_redeployment && answer.chain_deployment) {
        flash(null);
        // Watch it from the answer, not the next poll: a fast promotion may be over by then.
        state.promotion = {
          id: answer.chain_deployment.id,
          from: state.env.current_deployment ? state.env.current_deployment.id : null,
          status: answer.chain_deployment.status,
          outcome: null,
        };
        state.epoch += 1;
      } else {
        flash("ok", `Saved the instance type of ${setting.chainlet_name}; no new deployment was needed.`);
      }
    });
  }

  function onAutoscaling(setting) {
    return act(async () => {
      const answer = await changeAutoscaling({ chainId, env: state.env, setting });
      if (!answer) return;
      const text = {
        ACCEPTED: `Autoscaling of ${setting.chainlet_name} updated.`,
        UNCHANGED: `Autoscaling of ${setting.chainlet_name} unchanged.`,
      }[answer.status];
      flash("ok", text || answer.message);
    });
  }

  await ctx.every(POLL_MS, refresh);
}
