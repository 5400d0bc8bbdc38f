#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# 'make patches': turn kernel/patches/series plus our new files into a mailable
# series (git format-patch, with cover letter) against pristine 6.12, and run
# checkpatch.pl --strict on it.
#
# A new file (under kernel/, tools/testing/selftests/kvm/ or Documentation/virt/)
# belongs to the patch whose header names it on a line of its own:
#     Vmpace-Adds: virt/kvm/pace.c
# Those lines are dropped from the mailed changelog.  The cover letter is
# kernel/patches/cover-letter: subject on the first line, blurb after.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/versions"
. "$here/lib.sh"

pristine=$BUILD/src-$KPKG_VERSION/linux-source-6.12
[ -d "$pristine" ] || die "no pristine source: run 'make tree' first"
out=$BUILD/patches
g=$BUILD/patches-git
rm -rf "$out" "$g"
mkdir -p "$out" "$g"

mapfile -t patches < <(series_patches)
if [ ${#patches[@]} -eq 0 ]; then
	log "kernel/patches/series is empty: nothing to mail"
	exit 0
fi

# Every overlay file must be claimed by exactly one patch.
claims=$(for p in "${patches[@]}"; do
	sed -n '/^diff \|^---$/q; s/^Vmpace-Adds:[[:space:]]*//p' "$p" | sed "s|\$|\t${p##*/}|"
done)
overlay_list | cut -f2 | while IFS= read -r f; do
	n=$(awk -F'\t' -v f="$f" '$1 == f' <<<"$claims" | wc -l)
	[ "$n" -eq 1 ] || die "$f is added by $n patches: name it in exactly one patch header ('Vmpace-Adds: $f')"
done

export GIT_AUTHOR_DATE="2026-01-01 00:00:00 +0000" GIT_COMMITTER_DATE="2026-01-01 00:00:00 +0000"
git -C "$g" init -q
git -C "$g" config user.name "vmpace build"
git -C "$g" config user.email "vmpace@localhost"
series_files | while IFS= read -r f; do
	[ -e "$pristine/$f" ] || continue
	mkdir -p "$g/$(dirname "$f")"
	cp "$pristine/$f" "$g/$f"
done
git -C "$g" add -A
git -C "$g" commit -q --allow-empty -m "pristine $KSRC_PKG $KPKG_VERSION (files touched by the series)"
base=$(git -C "$g" rev-parse HEAD)

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
for p in "${patches[@]}"; do
	git -C "$g" mailinfo "$tmp/msg" "$tmp/diff" < "$p" > "$tmp/info"
	(cd "$g" && patch -p1 -s --fuzz=0 --no-backup-if-mismatch < "$tmp/diff") ||
		die "${p##*/} does not apply"
	awk -F'\t' -v p="${p##*/}" '$2 == p { print $1 }' <<<"$claims" | while IFS= read -r f; do
		src=$(overlay_list | awk -F'\t' -v f="$f" '$2 == f { print $1 }')
		mkdir -p "$g/$(dirname "$f")"
		cp "$repo/$src" "$g/$f"
	done
	author=$(sed -n 's/^Author: //p' "$tmp/info")
	email=$(sed -n 's/^Email: //p' "$tmp/info")
	subject=$(sed -n 's/^Subject: //p' "$tmp/info")
	[ -n "$subject" ] || die "${p##*/}: no Subject: in the patch header"
	{ echo "$subject"; echo; grep -v '^Vmpace-Adds:' "$tmp/msg"; } > "$tmp/commit"
	git -C "$g" add -A
	git -C "$g" commit -q --author="${author:-vmpace build} <${email:-vmpace@localhost}>" -F "$tmp/commit"
done

git -C "$g" format-patch -q --cover-letter --thread -o "$out" "$base"..HEAD
cover=$(ls "$out"/0000-*)
if [ -f "$repo/kernel/patches/cover-letter" ]; then
	subj=$(head -n 1 "$repo/kernel/patches/cover-letter")
	tail -n +3 "$repo/kernel/patches/cover-letter" > "$tmp/blurb"
	sed -i -e "s|\*\*\* SUBJECT HERE \*\*\*|$subj|" -e "/\*\*\* BLURB HERE \*\*\*/{r $tmp/blurb
d}" "$cover"
fi

# checkpatch from the pristine tree, with the patched tree as --root
errors=0
for f in "$out"/0*.patch; do
	[ "$f" = "$cover" ] && continue
	perl "$pristine/scripts/checkpatch.pl" --strict --root="$BUILD/tree" --no-summary \
		--show-types "$f" > "$f.checkpatch" 2>&1 || true
	e=$(grep -c '^ERROR:' "$f.checkpatch" || true)
	w=$(grep -c '^WARNING:' "$f.checkpatch" || true)
	c=$(grep -c '^CHECK:' "$f.checkpatch" || true)
	printf 'checkpatch --strict %-60s %s errors, %s warnings, %s checks\n' "${f##*/}" "$e" "$w" "$c"
	errors=$((errors + e))
done
log "series in $out (checkpatch output in *.checkpatch)"
[ "$errors" -eq 0 ] || die "checkpatch reported $errors errors"
