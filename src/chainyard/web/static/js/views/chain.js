import { api } from "../api.js";
import { developmentBadge, h, notice, replace, shortId, statusBadge, table, when } from "../dom.js";
import { asyncQueueLabel, asyncQueues } from "./async-queue.js";

const DEPLOYMENTS_SHOWN = 50;

function deploymentCell(chainId, deployment, testid) {
  if (!deployment) return h("span", { class: "muted" }, "none");
  return h(
    "span",
    {},
    h("a", { href: `#/chains/${chainId}/deployments/${deployment.id}`, "data-testid": testid }, deployment.id),
    " ",
    statusBadge(deployment.status),
  );
}

export async function chainView(ctx, main, chainId) {
  const chain = await api.chain(chainId);
  if (!ctx.alive) return;
  ctx.crumbs(["Chains", "#/"], [chain.name]);
  const environments = h("div", {});
  const deployments = h("div", {});
  const status = h("div", {});
  replace(
    main,
    h("h1", { "data-testid": "chain-name" }, chain.name),
    h("p", { class: "subtitle" }, "Chain ", shortId(chain.id), ` · created ${when(chain.created_at)} · team ${chain.team_name}`),
    status,
    h("h2", {}, "Environments"),
    environments,
    h("h2", {}, "Deployments"),
    deployments,
  );

  await ctx.every(3000, async () => {
    try {
      const [envs, deps, queues] = await Promise.all([
        api.environments(chainId),
        api.deployments(chainId, { limit: DEPLOYMENTS_SHOWN }),
        asyncQueues(chainId),
      ]);
      if (!ctx.alive) return;
      replace(status);
      const envRows = envs.environments.map((e) =>
        h(
          "tr",
          { "data-testid": "environment-row", "data-environment": e.name },
          h("td", {}, h("a", { href: `#/chains/${chainId}/environments/${e.name}`, "data-testid": "environment-link" }, e.name)),
          h("td", {}, deploymentCell(chainId, e.current_deployment)),
          h("td", {}, e.candidate_deployment ? deploymentCell(chainId, e.candidate_deployment) : h("span", { class: "muted" }, "—")),
          h("td", { class: "num" }, String(e.chainlet_settings.length)),
        ),
      );
      replace(
        environments,
        table(["Name", "Current deployment", "Being promoted", ["Chainlets", "num"]], envRows, {
          empty: "No environments.",
          testid: "environments",
        }),
      );
      const depRows = deps.deployments.map((d) =>
        h(
          "tr",
          { "data-testid": "deployment-row", "data-deployment-id": d.id },
          h(
            "td",
            {},
            h("a", { href: `#/chains/${chainId}/deployments/${d.id}` }, d.id),
            d.is_development ? [" ", developmentBadge()] : null,
          ),
          h("td", {}, statusBadge(d.status)),
          h("td", {}, d.environment || h("span", { class: "muted" }, "—")),
          h("td", { class: "num" }, String(d.chainlets.length)),
          h("td", {}, asyncQueueLabel(queues.get(d.id))),
          h("td", {}, when(d.created_at)),
        ),
      );
      replace(
        deployments,
        table(["Id", "Status", "Environment", ["Chainlets", "num"], "Async queue", "Created"], depRows, {
          empty: "No deployments.",
          testid: "deployments",
        }),
        deps.deployments.length === DEPLOYMENTS_SHOWN
          ? h("p", { class: "muted" }, `The ${DEPLOYMENTS_SHOWN} newest deployments.`)
          : null,
      );
    } catch (err) {
      if (ctx.alive) replace(status, notice("error", err.message));
    }
  });
}
