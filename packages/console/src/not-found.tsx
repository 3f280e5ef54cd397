import { Layout } from "./views/layout.js";

/** The one answer for what does not exist and what the role may not see. */
export function NotFound() {
  return (
    <Layout title="Not found">
      <p>
        There is nothing here, or nothing your role may see. <a href="/">Back to the overview</a>
      </p>
    </Layout>
  );
}
