import type { RouteLabel } from "./gateway_metrics.ts";
import { HttpError } from "./http_error.ts";

/** A matched route: its label, the HTTP methods it answers and the names in its path. */
export interface Route {
  readonly label: RouteLabel;
  /** HTTP methods the route answers (`Allow`). */
  readonly allow: string;
  readonly plugin?: string;
  readonly method?: string;
}

/** A plugin name as manifests allow it. */
const PLUGIN_NAME = /^[a-z][a-z0-9-]{0,62}$/;
/** A method name a client may call: never a protocol method (`$/...`) or host service. */
const METHOD_NAME = /^[A-Za-z_][A-Za-z0-9_.-]{0,127}$/;
const GET_ONLY = "GET, HEAD";

const ROUTES = {
  call: "/v1/plugins/{name}/{method}",
  plugin: "/v1/plugins/{name}",
  plugins: "/v1/plugins",
  healthz: "/healthz",
  metrics: "/metrics",
} as const;

const OTHER: Route = { label: "other", allow: "" };

/** Routes of paths seen, so a busy route is matched once; bounded (paths come from clients). */
const routeCache = new Map<string, Route>();

/** The path of a request URL (`http://host:port/path?query`), without parsing the whole URL. */
export function pathOf(url: string): string {
  const start = url.indexOf("/", url.indexOf("//") + 2);
  if (start < 0) return "/";
  let end = url.length;
  const q = url.indexOf("?", start);
  if (q >= 0) end = q;
  const h = url.indexOf("#", start);
  if (h >= 0 && h < end) end = h;
  return url.slice(start, end);
}

/** The route of a path (label `other` when none matches). */
export function routeOf(path: string): Route {
  let route = routeCache.get(path);
  if (route === undefined) {
    route = matchRoute(path);
    if (route !== OTHER) {
      if (routeCache.size >= 1024) routeCache.clear();
      routeCache.set(path, route);
    }
  }
  return route;
}

/**
 * The error for a request whose HTTP method `route` does not answer: 404 naming the routes
 * when no route matched `url`, else 405 with `Allow`.
 */
export function routeError(route: Route, verb: string, url: string): HttpError {
  if (route.label === "other") {
    return new HttpError(
      404,
      "NOT_FOUND",
      `no route for ${pathOf(url)}; routes: POST ${ROUTES.call}, GET ` +
        `${ROUTES.plugins}, GET ${ROUTES.plugin}, GET ${ROUTES.healthz}, GET ${ROUTES.metrics}, ` +
        "GET / (dashboard)",
    );
  }
  return new HttpError(
    405,
    "METHOD_NOT_ALLOWED",
    `${route.label} answers ${route.allow}, not ${verb}`,
    { allow: route.allow },
  );
}

function matchRoute(path: string): Route {
  switch (path) {
    case "/":
      return { label: "/", allow: GET_ONLY };
    case "/dashboard/events":
      return { label: "/dashboard/events", allow: GET_ONLY };
    case "/dashboard/app.js":
    case "/dashboard/app.css":
    case "/dashboard/uplot.js":
    case "/dashboard/uplot.css":
      return { label: "/dashboard/{asset}", allow: GET_ONLY };
    case "/healthz":
      return { label: "/healthz", allow: GET_ONLY };
    case "/metrics":
      return { label: "/metrics", allow: GET_ONLY };
    case "/v1/plugins":
      return { label: "/v1/plugins", allow: GET_ONLY };
  }
  if (!path.startsWith("/v1/plugins/")) return OTHER;
  const rest = path.slice("/v1/plugins/".length).split("/");
  const plugin = rest[0]!;
  if (rest.length === 1 && PLUGIN_NAME.test(plugin)) {
    return { label: "/v1/plugins/{name}", allow: GET_ONLY, plugin };
  }
  if (rest.length === 2 && PLUGIN_NAME.test(plugin) && METHOD_NAME.test(rest[1]!)) {
    return { label: "/v1/plugins/{name}/{method}", allow: "POST", plugin, method: rest[1]! };
  }
  return OTHER;
}
