// Bundles the dashboard into the Python package (api/peaceland/api/dashboard/static):
// every asset comes from the npm registry through package-lock.json, none from a CDN.
import { build } from "esbuild";
import { copyFileSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { feature } from "topojson-client";

const out = new URL("../peaceland/api/dashboard/static/", import.meta.url).pathname;
mkdirSync(out, { recursive: true });

await build({
  entryPoints: ["src/main.ts"],
  bundle: true,
  format: "esm",
  minify: true,
  target: "es2022",
  outfile: `${out}app.js`,
  legalComments: "linked",
  logLevel: "warning",
});
// MapLibre's worker is loaded from beside the bundle (its URL is the bundle's, resolved).
const maplibre = new URL("node_modules/maplibre-gl/dist/", import.meta.url).pathname;
copyFileSync(`${maplibre}maplibre-gl-worker.mjs`, `${out}maplibre-gl-worker.mjs`);
copyFileSync(`${maplibre}maplibre-gl.css`, `${out}maplibre-gl.css`);
copyFileSync(
  new URL("node_modules/uplot/dist/uPlot.min.css", import.meta.url).pathname,
  `${out}uPlot.min.css`,
);
copyFileSync("src/dashboard.css", `${out}dashboard.css`);
// The basemap needs no network: the world's land, from Natural Earth (world-atlas, 1:50m).
const topology = JSON.parse(
  readFileSync(new URL("node_modules/world-atlas/land-50m.json", import.meta.url), "utf8"),
);
writeFileSync(`${out}land.geojson`, JSON.stringify(feature(topology, topology.objects.land)));
console.log(`dashboard built into ${out}`);
