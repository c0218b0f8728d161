#!/usr/bin/env bash
# mkpackages.sh builds Warren's release artifacts into $DIST, each with a
# .sha256 file (sha256sum's format):
#   linux/ARCH:  warren_<ver>_ARCH.deb and warren-<ver>-1.ARCH.rpm (node:
#                warrend, warren), the same for warren-coordinator
#                (warren-coordinator, warren-derp), made with nfpm;
#   darwin/ARCH: warren_<ver>_darwin_ARCH.tar.gz (warrend, warren, the
#                launchd plist, INSTALL.txt);
#   windows/ARCH: warren_<ver>_windows_ARCH.zip (warrend.exe, warren.exe,
#                INSTALL.txt).
# Usage: ops/packaging/mkpackages.sh [OS/ARCH ...]   (default: all five)
# Environment: VERSION (stamped into the binaries; default git describe),
# DIST (default dist), GO (default go), NFPM (the nfpm command),
# FORMATS (the Linux package formats, default "deb rpm"), CGO_ENABLED
# (default 0: static binaries) and TRIMPATH (default -trimpath; empty for
# none). make test-packages sets CGO_ENABLED=1 TRIMPATH= so that the build
# reuses what make test compiled; releases keep the defaults.
# Run from the repository's root (the Makefile does: make packages).
set -euo pipefail

GO=${GO:-go}
DIST=${DIST:-dist}
VERSION=${VERSION:-$(git describe --tags --always --dirty 2>/dev/null || echo dev)}
NFPM=${NFPM:-$GO run github.com/goreleaser/nfpm/v2/cmd/nfpm@v2.48.0}
FORMATS=${FORMATS:-deb rpm}
CGO_ENABLED=${CGO_ENABLED:-0}
TRIMPATH=${TRIMPATH--trimpath}
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
	targets=(linux/amd64 linux/arm64 darwin/amd64 darwin/arm64 windows/amd64)
fi

# ver is the version in file names; PKG_VERSION the one .deb and .rpm
# accept: starting with a digit, without '-' (git describe's
# v1.2.3-4-gabcdef-dirty becomes 1.2.3+4+gabcdef+dirty, a bare commit
# 2112d51 becomes 0.0.0+git.2112d51, below every release).
ver=${VERSION#v}
pkgver=${ver//-/+}
if ! [[ $pkgver =~ ^[0-9]+\.[0-9]+ ]]; then # not a release tag: a commit, or "dev"
	pkgver="0.0.0+git.$pkgver"
fi
# Archives get the time of the last commit, so that a rebuild of the same
# commit gives the same bytes.
mtime=${SOURCE_DATE_EPOCH:-$(git log -1 --format=%ct 2>/dev/null || date +%s)}

mkdir -p "$DIST"
build=$DIST/build
ldflags="-s -w -X github.com/warrenmesh/warren/internal/version.Version=$VERSION"

# gobuild OS ARCH DIR CMD... builds the commands for OS/ARCH into DIR.
gobuild() {
	local os=$1 arch=$2 dir=$3
	shift 3
	mkdir -p "$dir"
	local c
	for c in "$@"; do
		echo "== build $c for $os/$arch"
		# shellcheck disable=SC2086 # TRIMPATH is one flag or none
		CGO_ENABLED=$CGO_ENABLED GOOS=$os GOARCH=$arch $GO build $TRIMPATH -ldflags "$ldflags" -o "$dir/" "./cmd/$c"
	done
}

# sum FILE writes FILE.sha256 next to it.
sum() {
	(cd "$(dirname "$1")" && sha256sum "$(basename "$1")" >"$(basename "$1").sha256")
	echo "== $1"
}

for t in "${targets[@]}"; do
	os=${t%/*}
	arch=${t#*/}
	dir=$build/${os}_$arch
	rm -rf "$dir"
	case "$os" in
	linux)
		gobuild "$os" "$arch" "$dir" warrend warren warren-coordinator warren-derp
		for f in $FORMATS; do
			for pkg in warren warren-coordinator; do
				out=$DIST/pkg-$f-$pkg-$arch
				rm -rf "$out"
				mkdir -p "$out"
				# nfpm expands variables in some fields, not in contents' src.
				sed -e "s|\${PKG_BIN}|$dir|g" -e "s|\${PKG_ARCH}|$arch|g" -e "s|\${PKG_VERSION}|$pkgver|g" \
					"ops/packaging/$pkg.yaml" >"$dir/$pkg.yaml"
				$NFPM package --config "$dir/$pkg.yaml" --packager "$f" --target "$out/"
				file=$(ls "$out"/*)
				mv "$file" "$DIST/"
				rmdir "$out"
				sum "$DIST/$(basename "$file")"
			done
		done
		;;
	darwin | windows)
		name=warren_${ver}_${os}_$arch
		stage=$dir/$name
		gobuild "$os" "$arch" "$stage" warrend warren
		cp "ops/packaging/INSTALL-$os.txt" "$stage/INSTALL.txt"
		if [ "$os" = darwin ]; then
			cp ops/launchd/com.warrenmesh.warrend.plist "$stage/"
			tar -C "$dir" --sort=name --owner=0 --group=0 --numeric-owner --mtime="@$mtime" \
				-czf "$DIST/$name.tar.gz" "$name"
			sum "$DIST/$name.tar.gz"
		else
			find "$stage" -exec touch -d "@$mtime" {} +
			rm -f "$DIST/$name.zip"
			(cd "$dir" && zip -q -r -X "../../$name.zip" "$name")
			sum "$DIST/$name.zip"
		fi
		;;
	*)
		echo "mkpackages.sh: no package for $t" >&2
		exit 2
		;;
	esac
done
