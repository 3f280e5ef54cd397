/** What a change did, and the procedure's warnings about it, shown above the page it returns to. */
export function Notices(props: { done?: string | undefined; warnings?: string[] | undefined }) {
  const warnings = props.warnings ?? [];
  return (
    <>
      {props.done && (
        <p class="done" role="status">
          {props.done}
        </p>
      )}
      {warnings.length > 0 && (
        <ul class="warnings" role="alert">
          {warnings.map((w) => (
            <li>WARNING: {w}</li>
          ))}
        </ul>
      )}
    </>
  );
}
