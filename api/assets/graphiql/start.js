// Starts GraphiQL against this server's /graphql. Kept out of the page so the page's
// content security policy can refuse inline scripts.
ReactDOM.createRoot(document.getElementById("graphiql")).render(
  React.createElement(GraphiQL, {
    fetcher: GraphiQL.createFetcher({
      url: new URL("/graphql", window.location.origin).toString(),
      fetch: (url, opts = {}) => fetch(url, { ...opts, credentials: "same-origin" }),
    }),
    defaultEditorToolsVisibility: true,
    defaultHeaders: JSON.stringify({ Authorization: "Bearer rk_…" }, null, 2),
  })
);
