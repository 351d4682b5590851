#!/usr/bin/env bash
# Re-downloads the GraphiQL page's scripts and styles into
# host/server/assets/graphiql/ with `npm pack` (only the npm registry is
# needed, no CDN), together with their licenses. The host embeds them and
# serves them at /graphiql/<file> (host/server/src/assets.rs).
#
# To upgrade, change the versions below, run this script, update the
# versions in host/server/assets/graphiql/README.md, rebuild the host and
# run `cargo test --release -p e2e-tests --test e2e graphiql_browser`.
# GraphiQL 3.x is the last line that ships a UMD build (plain <script>
# tags, React as a global); 4.x and later are ES modules only.
set -euo pipefail
cd "$(dirname "$0")/.."

GRAPHIQL_VERSION=3.9.0
REACT_VERSION=18.3.1

dest=host/server/assets/graphiql
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

unpack() { # <package> <version> -> directory with the package's files
    local name=$1 version=$2
    (cd "$work" && npm pack --silent "$name@$version" >/dev/null)
    mkdir -p "$work/$name"
    tar -xzf "$work/$name-$version.tgz" -C "$work/$name"
    echo "$work/$name/package"
}

graphiql=$(unpack graphiql "$GRAPHIQL_VERSION")
react=$(unpack react "$REACT_VERSION")
react_dom=$(unpack react-dom "$REACT_VERSION")

mkdir -p "$dest"
cp "$graphiql/graphiql.min.js" "$graphiql/graphiql.min.css" "$dest/"
cp "$graphiql/LICENSE" "$dest/LICENSE.graphiql"
cp "$react/umd/react.production.min.js" "$dest/"
cp "$react/LICENSE" "$dest/LICENSE.react"
cp "$react_dom/umd/react-dom.production.min.js" "$dest/"
cp "$react_dom/LICENSE" "$dest/LICENSE.react-dom"

echo "vendored graphiql $GRAPHIQL_VERSION, react and react-dom $REACT_VERSION into $dest:"
ls -l "$dest"
