import { api } from "../api.js";
import { developmentBadge, h, notice, replace, shortId, statusBadge, table, when } from "../dom.js";
import { asyncQueueLabel, asyncQueues } from "./async-queue.js";
import { patchHistory } from "./patches.js";

function autoscalingSummary(settings) {
  if (!settings) return h("span", { class: "muted" }, "—");
  return `${settings.min_replica}–${settings.max_replica} replicas, ${settings.concurrency_target} per replica`;
}

export async function deploymentView(ctx, main, chainId, deploymentId) {
  const chain = await api.chain(chainId);
  if (!ctx.alive) return;
  ctx.crumbs(["Chains", "#/"], [chain.name, `#/chains/${chainId}`], [`deployment ${deploymentId}`]);
  const head = h("div", {});
  const chainlets = h("div", {});
  const status = h("div", {});
  // A development deployment's live patches, shown once the deployment says it is one.
  const patchList = h("div", {});
  const patches = h("section", { hidden: true, "data-testid": "patch-history" }, h("h2", {}, "Patches"), patchList);
  replace(main, head, status, h("h2", {}, "Chainlets"), chainlets, patches);

  await ctx.every(2000, async () => {
    try {
      const [d, queues] = await Promise.all([api.deployment(chainId, deploymentId), asyncQueues(chainId)]);
      if (!ctx.alive) return;
      replace(status);
      replace(
        head,
        h(
          "h1",
          {},
          "Deployment ",
          shortId(d.id),
          " ",
          statusBadge(d.status, "deployment-status"),
          d.is_development ? [" ", developmentBadge()] : null,
        ),
        h(
          "p",
          { class: "subtitle" },
          `created ${when(d.created_at)} · `,
          d.environment
            ? h("span", {}, "serves ", h("a", { href: `#/chains/${chainId}/environments/${d.environment}` }, d.environment))
            : d.is_development
              ? "the chain's development deployment: at most one replica, live-patched by chainyard push --watch"
              : "serves no environment",
        ),
        h("p", { class: "subtitle" }, "Async queue: ", asyncQueueLabel(queues.get(d.id))),
      );
      const rows = d.chainlets.map((c) =>
        h(
          "tr",
          { "data-testid": "chainlet-row", "data-chainlet": c.name },
          h("td", {}, c.name),
          h("td", {}, statusBadge(c.status)),
          h("td", {}, c.instance_type_name),
          h("td", { class: "num" }, String(c.active_replica_count)),
          h("td", {}, autoscalingSummary(c.autoscaling_settings)),
          h(
            "td",
            { class: "actions" },
            h("a", { href: `#/chains/${chainId}/deployments/${d.id}/chainlets/${c.id}/logs`, "data-testid": "logs-link" }, "Logs"),
          ),
        ),
      );
      replace(
        chainlets,
        table(["Name", "Status", "Instance type", ["Replicas", "num"], "Autoscaling", ""], rows, { testid: "chainlets" }),
      );
      patches.hidden = !d.is_development;
      if (d.is_development) {
        const history = await patchHistory(chainId, d.id);
        if (ctx.alive) replace(patchList, history);
      }
    } catch (err) {
      if (ctx.alive) replace(status, notice("error", err.message));
    }
  });
}
