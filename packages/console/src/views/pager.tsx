/** Newer/older links of a keyset-paged list, keeping its filters. */
export function Pager(props: {
  path: string;
  query: Record<string, string>;
  first: string | undefined;
  last: string | undefined;
  newer: boolean;
  older: boolean;
}) {
  const link = (key: "after" | "before", id: string) =>
    `${props.path}?${new URLSearchParams({ ...props.query, [key]: id }).toString()}`;
  return (
    <nav class="pager" aria-label="Pages">
      {props.newer && props.first !== undefined && <a href={link("after", props.first)}>← Newer</a>}
      {props.older && props.last !== undefined && <a href={link("before", props.last)}>Older →</a>}
    </nav>
  );
}
