import type { ItemFilter } from "../queries/items.js";
import { csrfField } from "../security/csrf.js";

export type BulkAction = "retry" | "cancel";

export const bulkLabels: Record<BulkAction, { button: string; verb: string; done: string }> = {
  retry: { button: "Retry all failed matching this filter", verb: "Retry", done: "put back in the queue" },
  cancel: { button: "Cancel all unsent/retrying matching this filter", verb: "Cancel", done: "cancelled" },
};

/** The query string of a filter (empty fields left out), for links back to the list. */
export function filterQuery(filter: ItemFilter): Record<string, string> {
  return Object.fromEntries(Object.entries(filter).filter(([, v]) => v !== undefined)) as Record<
    string,
    string
  >;
}

/** The filter as hidden fields, so that a bulk form carries it. */
function FilterFields({ filter }: { filter: ItemFilter }) {
  return (
    <>
      {Object.entries(filterQuery(filter)).map(([name, value]) => (
        <input type="hidden" name={name} value={value} />
      ))}
    </>
  );
}

/** A POST of `action` for the filter; with `confirm`, the second step that acts. */
function BulkForm(props: {
  action: BulkAction;
  filter: ItemFilter;
  csrfToken: string;
  confirm?: boolean;
  label: string;
}) {
  return (
    <form method="post" action={`/items/${props.action}-all`}>
      <input type="hidden" name={csrfField} value={props.csrfToken} />
      <FilterFields filter={props.filter} />
      {props.confirm && <input type="hidden" name="confirm" value="yes" />}
      <button type="submit">{props.label}</button>
    </form>
  );
}

/** Under the list: the two bulk actions for the filter shown. Each asks for confirmation first. */
export function BulkForms(props: { filter: ItemFilter; csrfToken: string }) {
  return (
    <div class="bulk">
      {(["retry", "cancel"] as const).map((action) => (
        <BulkForm
          action={action}
          filter={props.filter}
          csrfToken={props.csrfToken}
          label={bulkLabels[action].button}
        />
      ))}
    </div>
  );
}

/** The confirmation step: "Retry 123 items?" and a button that does it. */
export function BulkConfirm(props: {
  action: BulkAction;
  count: number;
  filter: ItemFilter;
  csrfToken: string;
}) {
  const { verb } = bulkLabels[props.action];
  return (
    <>
      <p>
        {verb} {props.count} {props.count === 1 ? "item" : "items"}?
      </p>
      <BulkForm
        action={props.action}
        filter={props.filter}
        csrfToken={props.csrfToken}
        confirm
        label="Confirm"
      />
    </>
  );
}
