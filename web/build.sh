#!/usr/bin/env bash
# Rebuild the web view's vendored JavaScript from the versions pinned in package.json and package-lock.json:
# one minified bundle and the licence of every package in it, in p2pzmq/web/static/vendor/ (docs/DESIGN.md §9).
set -euo pipefail
cd "$(dirname "$0")"
npm ci --no-audit --no-fund
out=../p2pzmq/web/static/vendor
mkdir -p "$out"
node_modules/.bin/esbuild entry.js --bundle --minify --format=iife --target=es2019 \
    --legal-comments=none --outfile="$out/vendor.min.js"
for package in sigma graphology graphology-layout-forceatlas2 graphology-utils events; do
    version=$(node -p "require('./node_modules/$package/package.json').version")
    cp "node_modules/$package/LICENSE"* "$out/LICENSE.$package-$version.txt"
done
