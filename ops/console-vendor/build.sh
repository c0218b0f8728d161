#!/usr/bin/env bash
# Rebuilds coordinator/console/static/vendor/codemirror.js (CodeMirror 6 for
# the console's policy editor) and its LICENSES.txt from the packages pinned
# in package-lock.json. The result is committed: running or building the
# coordinator never needs npm. Run it after changing package.json:
#   ops/console-vendor/build.sh
set -euo pipefail
cd "$(dirname "$0")"
out=../../coordinator/console/static/vendor
npm ci --no-audit --no-fund
mkdir -p "$out"
node_modules/.bin/esbuild entry.js --bundle --minify --format=iife --global-name=WarrenCM \
  --target=es2020 --legal-comments=none --outfile="$out/codemirror.js"
# Every bundled package's license, with its name and version.
{
  echo "Licenses of the packages bundled into codemirror.js (built by ops/console-vendor/build.sh)."
  for dir in $(node -e '
      const lock = require("./package-lock.json");
      for (const [p, v] of Object.entries(lock.packages)) {
        if (p && !v.dev) console.log(p);
      }' | sort); do
    name=${dir#node_modules/}
    version=$(node -p "require('./$dir/package.json').version")
    echo
    echo "================================================================"
    echo "$name $version"
    echo "================================================================"
    lic=$(ls "$dir" | grep -iE '^(license|licence|copying)' | head -1 || true)
    if [ -n "$lic" ]; then cat "$dir/$lic"; else echo "License: $(node -p "require('./$dir/package.json').license")"; fi
  done
} > "$out/LICENSES.txt"
ls -l "$out"
