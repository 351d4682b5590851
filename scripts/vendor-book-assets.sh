#!/usr/bin/env bash
# Copies the booking page's one third-party script, graphql-ws's browser
# (UMD) build, into host/server/assets/book/ together with its license.
# The version is the one pinned in tests/browser/package.json (the node
# browser tests use the same package), installed from package-lock.json
# with `npm ci` when tests/browser/node_modules lacks it. The host serves
# the files at /book/<file>; versions in host/server/assets/book/README.md.
#
# To upgrade: in tests/browser run `npm install graphql-ws@<version>
# --save-exact`, run this script, update the version in README.md and the
# `?v=` parameter in index.html (the file may be cached under one URL),
# rebuild the host and run the booking page's browser test
# (tests/browser/booking-page.mjs).
set -euo pipefail
cd "$(dirname "$0")/.."

browser=tests/browser
dest=host/server/assets/book
package="$browser/node_modules/graphql-ws"

wanted=$(node -p "require('./$browser/package.json').dependencies['graphql-ws'] ?? ''")
if [[ -z "$wanted" ]]; then
    echo "graphql-ws is not a dependency in $browser/package.json" >&2
    exit 1
fi
installed=$(node -p "try { require('./$package/package.json').version } catch { '' }")
if [[ "$installed" != "$wanted" ]]; then
    (cd "$browser" && npm ci --no-audit --no-fund)
    installed=$(node -p "require('./$package/package.json').version")
fi
if [[ "$installed" != "$wanted" ]]; then
    echo "tests/browser has graphql-ws $installed, package.json pins $wanted" >&2
    exit 1
fi

mkdir -p "$dest"
cp "$package/umd/graphql-ws.min.js" "$dest/graphql-ws.min.js"
cp "$package/LICENSE.md" "$dest/graphql-ws.LICENSE"

echo "vendored graphql-ws $installed into $dest:"
ls -l "$dest/graphql-ws.min.js" "$dest/graphql-ws.LICENSE"
if ! grep -q "graphql-ws.min.js?v=$installed\"" "$dest/index.html"; then
    echo "note: update the ?v= of graphql-ws.min.js in $dest/index.html to $installed" >&2
fi
if ! grep -q "| $installed |" "$dest/README.md"; then
    echo "note: update the graphql-ws version in $dest/README.md to $installed" >&2
fi
