import { type Context, Hono } from "hono";
import type { Child } from "hono/jsx";
import type { ConsoleEnv } from "../context.js";
import { NotFound } from "../not-found.js";
import { type ActionResult, bulkCap, cancelItems, describeResult, retryItems } from "../queries/actions.js";
import { isId, readItem, readItemPage } from "../queries/item.js";
import { matchingIds, resolveFilter } from "../queries/items.js";
import { type BulkAction, BulkConfirm, bulkLabels, filterQuery } from "../views/bulk.js";
import { ItemPage } from "../views/item.js";
import { Results } from "../views/item-actions.js";
import { Layout, Problems } from "../views/layout.js";
import { requirePool } from "./pool.js";

const act: Record<
  BulkAction,
  (pool: Parameters<typeof retryItems>[0], ids: string[]) => Promise<ActionResult>
> = {
  retry: retryItems,
  cancel: cancelItems,
};
/** The statuses each action can change; the procedures leave the others as they are. */
const actionStatuses: Record<BulkAction, string[]> = { retry: ["failed"], cancel: ["unsent", "retrying"] };

/**
 * POST /items/<id>/retry and /cancel, and the bulk forms for a filter of /items. Everything runs as the
 * signed-in role: an item it may not see is not found, and the procedures touch only a user's own items.
 */
export const actionRoutes = new Hono<ConsoleEnv>()
  .post("/items/:id/retry", (c) => itemAction(c, "retry"))
  .post("/items/:id/cancel", (c) => itemAction(c, "cancel"))
  .post("/items/retry-all", (c) => bulkAction(c, "retry"))
  .post("/items/cancel-all", (c) => bulkAction(c, "cancel"));

async function itemAction(c: Context<ConsoleEnv>, action: BulkAction) {
  const session = c.get("session");
  const pool = requirePool(session);
  const id = c.req.param("id") ?? "";
  // An item the role may not see is not found, exactly as on its page.
  if (!isId(id) || !(await readItem(pool, id))) return c.html(<NotFound />, 404);
  const { results, problems } = await attempt(() => act[action](pool, [id]), action);
  const data = await readItemPage(pool, id);
  if (!data) return c.html(<NotFound />, 404);
  return c.html(<ItemPage data={data} session={session} results={results} problems={problems} />);
}

async function bulkAction(c: Context<ConsoleEnv>, action: BulkAction) {
  const session = c.get("session");
  const pool = requirePool(session);
  const form = Object.fromEntries(
    Object.entries(await c.req.parseBody()).filter((e): e is [string, string] => typeof e[1] === "string"),
  );
  const { filter, profileId, problems } = await resolveFilter(pool, form, session.access === "admin");
  const back = `/items?${new URLSearchParams(filterQuery(filter))}`;
  const page = (body: Child, status: 200 | 422 = 200) =>
    c.html(
      <Layout title={bulkLabels[action].button} session={session}>
        {body}
        <p>
          <a href={back}>Back to the items</a>
        </p>
      </Layout>,
      status,
    );
  if (problems.length > 0) return page(<Problems messages={problems} />, 422);
  const ids = await matchingIds(pool, filter, profileId, actionStatuses[action], bulkCap + 1);
  if (ids.length > bulkCap) {
    return page(
      <Problems
        messages={[
          `More than ${bulkCap.toLocaleString("en")} items match: narrow the filter (by date, say) and act on each part.`,
        ]}
      />,
      422,
    );
  }
  if (ids.length === 0) return page(<p>No item matches: nothing to do.</p>);
  if (form.confirm !== "yes") {
    return page(
      <BulkConfirm action={action} count={ids.length} filter={filter} csrfToken={session.csrfToken} />,
    );
  }
  const done = await attempt(() => act[action](pool, ids), action);
  return page(
    <>
      <Results messages={done.results} />
      <Problems messages={done.problems} />
    </>,
  );
}

/** The action's result as messages, or the procedure's error as it reads. */
async function attempt(run: () => Promise<ActionResult>, action: BulkAction) {
  try {
    return { results: describeResult(await run(), bulkLabels[action].done), problems: [] };
  } catch (error) {
    return { results: [], problems: [(error as Error).message] };
  }
}
