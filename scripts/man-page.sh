#!/usr/bin/env bash
# Writes fasttrace's man page: swift-argument-parser's generate-manual run on the binary (the page is
# made from the argument definitions and their help texts), then three corrections it cannot be told:
#   - the implicit `help` subcommand goes (the `subcommand` word in the synopsis and its entry in the
#     option list: fasttrace has no subcommands; `fasttrace help` alone prints the help, which the
#     description says);
#   - EXIT STATUS lists every status, from `fasttrace --exit-statuses` (generate-manual writes only
#     "0 on success, and >0 if an error occurs").
#
#   scripts/man-page.sh FASTTRACE GENERATE_MANUAL DATE OUTPUT      (DATE as YYYY-MM-DD)
#
# install.sh calls it; the lab test CommandLineTests reads the page it writes.
set -Eeuo pipefail

die() { echo "man-page.sh: $*" >&2; exit 1; }
[[ $# -eq 4 ]] || die "usage: $0 FASTTRACE GENERATE_MANUAL DATE OUTPUT"
binary=$1 generator=$2 date=$3 output=$4

work=$(mktemp -d /tmp/fasttrace-man.XXXXXX)
trap 'rm -rf "$work"' EXIT
"$generator" "$binary" --date "$date" --output-directory "$work" >/dev/null
[[ -s $work/fasttrace.1 ]] || die "generate-manual wrote no fasttrace.1"
"$binary" --exit-statuses >"$work/statuses"
[[ -s $work/statuses ]] || die "$binary --exit-statuses printed nothing"

awk -v statuses="$work/statuses" '
    # The synopsis word for the implicit help subcommand.
    /^\.Ar subcommand$/ { next }
    # Its entry: ".It Em help", its text, and the nested list of its own arguments up to that list'"'"'s .El.
    /^\.It Em help$/ { skipping = 1; next }
    skipping && /^\.El$/ { skipping = 0; next }
    skipping { next }
    # Every exit status, as a tagged list.
    /^\.Ex -std$/ {
        print ".Bl -tag -width 5n"
        while ((getline line < statuses) > 0) {
            tab = index(line, "\t")
            print ".It " substr(line, 1, tab - 1)
            print substr(line, tab + 1)
        }
        print ".El"
        next
    }
    { print }
' "$work/fasttrace.1" >"$output"
grep -q '^\.Sh "EXIT STATUS"' "$output" || die "the page has no EXIT STATUS section"
