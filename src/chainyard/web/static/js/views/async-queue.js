// A chain's async requests per deployment (GET /v1/chains/{id}/async_queue, a chainyard
// extension), as the chain and deployment pages show them. A deployment the answer does not list
// has none: an empty queue reads as a quiet "0 queued".

import { api } from "../api.js";
import { h } from "../dom.js";

export async function asyncQueues(chainId) {
  const body = await api.asyncQueue(chainId);
  return new Map(body.deployments.map((d) => [d.deployment_id, d]));
}

export function asyncQueueLabel(depth, testid = "async-queue") {
  const queued = depth ? depth.num_queued_requests : 0;
  const running = depth ? depth.num_in_progress_requests : 0;
  const attrs = { "data-testid": testid, "data-queued": queued, "data-in-progress": running };
  if (!queued && !running) return h("span", { ...attrs, class: "muted" }, "0 queued");
  return h("span", attrs, `${queued} queued, ${running} in progress`);
}
