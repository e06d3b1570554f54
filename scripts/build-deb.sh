#!/usr/bin/env bash
# Builds the Debian package of Ferry from a release binary (`make package`):
#   scripts/build-deb.sh .build-package/release/ferry dist
# The package holds /usr/bin/ferry, both systemd units (agent and hub), the
# journald size cap, example configs, and maintainer scripts that create the
# service users and their private directories. Its Depends line is computed
# from the binary's own shared libraries (ldd + dpkg -S), so it names exactly
# what the PC must have; a binary still linked to the Swift runtime is refused.
set -euo pipefail
BIN="${1:?usage: $0 FERRY_BINARY OUT_DIR}"
OUT="${2:?usage: $0 FERRY_BINARY OUT_DIR}"
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
die() {
    printf 'build-deb.sh: %s\n' "$*" >&2
    exit 1
}
[ -x "$BIN" ] || die "$BIN is not an executable"
if ldd "$BIN" | grep -q 'libswift\|libFoundation\|libdispatch'; then
    die "$BIN links the Swift runtime dynamically: build it with --static-swift-stdlib"
fi
VERSION="$("$BIN" --version | tr -d '[:space:]')"
ARCH="$(dpkg --print-architecture)"
STAGE="$(mktemp -d /tmp/ferry-deb.XXXXXX)"
trap 'rm -rf "$STAGE"' EXIT
P="$STAGE/ferry_${VERSION}_${ARCH}"

install -D -m 0755 "$BIN" "$P/usr/bin/ferry"
strip --strip-unneeded "$P/usr/bin/ferry" 2>/dev/null || true
# The units name /usr/local/bin/ferry (tarball installs); the package's binary is /usr/bin/ferry.
for u in agent/ferry-agent.service hub/ferry-hub.service; do
    install -d -m 0755 "$P/lib/systemd/system"
    sed -e 's#/usr/local/bin/ferry#/usr/bin/ferry#g' -e 's#Installed by agent/install.sh as .*#Installed by the ferry package.#' \
        "$ROOT/$u" >"$P/lib/systemd/system/$(basename "$u")"
    chmod 0644 "$P/lib/systemd/system/$(basename "$u")"
done
install -D -m 0644 "$ROOT/agent/journald-ferry.conf" "$P/usr/lib/systemd/journald.conf.d/ferry.conf"
install -D -m 0644 "$ROOT/agent/agent.example.json" "$P/usr/share/doc/ferry/examples/agent.example.json"
install -D -m 0644 "$ROOT/hub/hub.example.env" "$P/usr/share/doc/ferry/examples/hub.example.env"
install -D -m 0644 "$ROOT/README.md" "$P/usr/share/doc/ferry/README.md"
install -D -m 0644 "$ROOT/hub/OPERATIONS.md" "$P/usr/share/doc/ferry/OPERATIONS.md"

# Depends: the Debian packages that hold the binary's shared libraries.
deps=""
for lib in $(ldd "$BIN" | awk '/=> \// {print $3}'); do
    real="$(readlink -f "$lib")"
    pkg="$( (dpkg -S "$lib" 2>/dev/null || dpkg -S "$real" 2>/dev/null) | head -n1 | cut -d: -f1)"
    [ -n "$pkg" ] || die "no Debian package holds $lib"
    case " $deps " in *" $pkg "*) ;; *) deps="$deps $pkg" ;; esac
done
depends="$(printf '%s\n' $deps | sort -u | paste -sd, - | sed 's/,/, /g')"

install -d -m 0755 "$P/DEBIAN"
cat >"$P/DEBIAN/control" <<EOF
Package: ferry
Version: $VERSION
Architecture: $ARCH
Maintainer: Ferry project <ferry@lamdong.invalid>
Depends: $depends, adduser | passwd
Section: net
Priority: optional
Installed-Size: $(du -sk "$P" | cut -f1)
Homepage: https://ferry.lamdong.invalid
Description: offline-first sync of commune records with a provincial hub
 Ferry keeps a local SQLite replica of the province's forms and of a
 commune's records on each commune PC (the agent, with a local data-entry
 page on 127.0.0.1:8441) and exchanges signed, encrypted change sets with the
 provincial hub. One binary: \`ferry agent ...\`, \`ferry hub ...\`, \`ferry status\`.
EOF
install -m 0755 "$ROOT/agent/debian/postinst" "$P/DEBIAN/postinst"
install -m 0755 "$ROOT/agent/debian/prerm" "$P/DEBIAN/prerm"
install -m 0755 "$ROOT/agent/debian/postrm" "$P/DEBIAN/postrm"

mkdir -p "$OUT"
dpkg-deb --root-owner-group --build "$P" "$OUT/" >/dev/null
DEB="$OUT/ferry_${VERSION}_${ARCH}.deb"
[ -f "$DEB" ] || die "dpkg-deb made no $DEB"
printf '%s  %s KiB  (binary %s KiB)  Depends: %s\n' "$DEB" "$(($(stat -c %s "$DEB") / 1024))" \
    "$(($(stat -c %s "$P/usr/bin/ferry") / 1024))" "$depends"
