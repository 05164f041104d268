// The one bundle the web view loads (p2pzmq/web/static/vendor/vendor.min.js): what p2pzmq/web/static/app.js uses,
// put on window.P2PVendor so the page needs no module loader.
import Sigma from "sigma";
import Graph from "graphology";
import forceAtlas2 from "graphology-layout-forceatlas2";

window.P2PVendor = { Sigma, Graph, forceAtlas2 };
