#!/usr/bin/env bash
# Builds dist/vio4wd: ONE self-extracting executable (POSIX sh + tar + gzip at run time) holding
# the deno binary, the program bundled into one JS file and the C shim. It unpacks once into
# ${VIO4WD_HOME:-${XDG_CACHE_HOME:-$HOME/.cache}/vio4wd}/<hash> and runs from there; libzmq and
# DPDK come from the system (Debian libzmq5, dpdk). `deno task compile` is the alternative where
# the Deno runtime can be downloaded.
set -euo pipefail
cd "$(dirname "$0")/.."
for f in shim/build/libvio4wd_shim.so node_modules/deno/deno; do
  [ -e "$f" ] || { echo "build-sfx.sh: $f is missing: run scripts/setup.sh first" >&2; exit 1; }
done
stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
node_modules/deno/deno bundle --quiet --platform=deno -o "$stage/vio4wd.js" src/main.ts
cp node_modules/deno/deno "$stage/deno"
cp shim/build/libvio4wd_shim.so "$stage/"
tar -C "$stage" -czf "$stage/payload.tgz" deno vio4wd.js libvio4wd_shim.so
hash=$(sha256sum "$stage/payload.tgz" | cut -c1-16)
header() {
  cat <<HDR
#!/bin/sh
# vio4wd (self-extracting): the payload is unpacked once to \${VIO4WD_HOME:-\${XDG_CACHE_HOME:-\$HOME/.cache}/vio4wd}/$hash
set -e
d="\${VIO4WD_HOME:-\${XDG_CACHE_HOME:-\$HOME/.cache}/vio4wd}/$hash"
if [ ! -x "\$d/deno" ]; then
  mkdir -p "\$d.tmp.\$\$"
  tail -n +@SKIP@ "\$0" | tar -xzf - -C "\$d.tmp.\$\$"
  mv -T "\$d.tmp.\$\$" "\$d" 2>/dev/null || rm -rf "\$d.tmp.\$\$"
fi
VIO4WD_SELF=\$(readlink -f "\$0") VIO4WD_SHIM="\$d/libvio4wd_shim.so" DENO_DIR="\$d/.deno" DENO_NO_UPDATE_CHECK=1 \\
  exec "\$d/deno" run --quiet --no-prompt --no-config --no-lock --no-remote --no-npm --cached-only --allow-all \\
  "\$d/vio4wd.js" "\$@"
__PAYLOAD__
HDR
}
skip=$(($(header | wc -l) + 1))
mkdir -p dist
{ header | sed "s/@SKIP@/$skip/"; cat "$stage/payload.tgz"; } > dist/vio4wd
chmod +x dist/vio4wd
ls -la dist/vio4wd
