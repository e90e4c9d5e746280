#!/usr/bin/env bash
# Installs fasttrace for every user of this host: a release build with the Swift standard library linked
# in statically (only system libraries stay shared: libc, libstdc++, libmnl, libbpf), stripped, given
# exactly the capabilities it needs (setcap), its man page generated from the argument definitions
# (swift-argument-parser's generate-manual), and bash, zsh and fish completions. Run as root:
#
#   sudo scripts/install.sh [PREFIX]              build and install into PREFIX (default /usr/local)
#   sudo scripts/install.sh --uninstall [PREFIX]  remove exactly what an install put there
#
# What goes where (PREFIX/…): bin/fasttrace, share/man/man1/fasttrace.1,
# share/bash-completion/completions/fasttrace, share/zsh/site-functions/_fasttrace,
# share/fish/vendor_completions.d/fasttrace.fish, and share/fasttrace/install-manifest, the list of
# files and directories the install created, which --uninstall removes (and nothing else).
#
# Environment: FT_SCRATCH_PATH  SwiftPM scratch path of the release build (default .build)
set -Eeuo pipefail

die() { echo "install.sh: $*" >&2; exit 1; }

uninstall=0
if [[ ${1:-} == --uninstall ]]; then uninstall=1; shift; fi
if [[ ${1:-} == -h || ${1:-} == --help ]]; then
    sed -n '2,/^set -E/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//'
    exit 0
fi
[[ $# -le 1 ]] || die "usage: $0 [--uninstall] [PREFIX]"
prefix=${1:-/usr/local}
[[ -n $prefix && $prefix != -* ]] || die "usage: $0 [--uninstall] [PREFIX]"
prefix=$(realpath -m -- "$prefix")
[[ $(id -u) -eq 0 ]] || die "run as root (setcap needs CAP_SETFCAP): sudo $0 $*"

bin=$prefix/bin/fasttrace
man=$prefix/share/man/man1/fasttrace.1
bash_completion=$prefix/share/bash-completion/completions/fasttrace
zsh_completion=$prefix/share/zsh/site-functions/_fasttrace
fish_completion=$prefix/share/fish/vendor_completions.d/fasttrace.fish
manifest=$prefix/share/fasttrace/install-manifest
files=("$bin" "$man" "$bash_completion" "$zsh_completion" "$fish_completion")

# The manifest: `file PATH` and `dir PATH` lines; the dirs are those the install created.
uninstall_from_manifest() {
    local kind path dirs=()
    while read -r kind path; do
        # Only paths under PREFIX, whatever the manifest says.
        [[ $path == "$prefix"/* ]] || continue
        case $kind in
            file) rm -f -- "$path" ;;
            dir) dirs+=("$path") ;;
        esac
    done <"$manifest"
    # Longest path first, so a directory goes after everything inside it; one holding anything else
    # (files some other package put there) stays.
    while IFS= read -r path; do
        [[ -n $path ]] && { rmdir -- "$path" 2>/dev/null || true; }
    done < <(printf '%s\n' "${dirs[@]}" | awk '{ print length($0) "\t" $0 }' | sort -rn | cut -f2-)
}

if (( uninstall )); then
    if [[ -f $manifest ]]; then
        uninstall_from_manifest
        echo "install.sh: removed fasttrace from $prefix"
    else
        # No manifest (an install from before it existed, or one removed by hand): the files only.
        removed=0
        for f in "${files[@]}"; do [[ -e $f ]] && { rm -f -- "$f"; removed=$((removed + 1)); }; done
        echo "install.sh: no $manifest; removed $removed installed files from $prefix"
    fi
    exit 0
fi

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo"
scratch=${FT_SCRATCH_PATH:-.build}

# Build needs (libmnl, libbpf) and setcap; installed with apt-get when missing, as demo.sh and test.sh do.
needed=(libmnl-dev libbpf-dev libcap2-bin)
missing=()
if command -v dpkg-query >/dev/null; then
    for p in "${needed[@]}"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
    done
    if (( ${#missing[@]} > 0 )); then
        echo "install.sh: installing ${missing[*]}"
        DEBIAN_FRONTEND=noninteractive apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
    fi
fi
command -v swift >/dev/null || die "swift not found: install Swift 6.3 (https://swift.org/install)"
command -v setcap >/dev/null || die "setcap not found: install libcap2-bin (or your system's libcap tools)"

# Exactly the capabilities fasttrace checks for (Sources/FastTraceLinux/Privileges.swift): CAP_NET_RAW
# for the raw IPv4 and packet sockets; CAP_BPF to load the reply filter unless the kernel lets any user
# load socket filters (kernel.unprivileged_bpf_disabled=0); CAP_SYS_ADMIN instead on kernels before
# 5.8, which have no CAP_BPF. Never CAP_NET_ADMIN: it does not allow loading BPF.
bpf_disabled=$(cat /proc/sys/kernel/unprivileged_bpf_disabled 2>/dev/null || echo 2)
last_cap=$(cat /proc/sys/kernel/cap_last_cap 2>/dev/null || echo 40)
if [[ $bpf_disabled == 0 ]]; then
    caps=cap_net_raw
elif (( last_cap < 39 )); then
    caps=cap_net_raw,cap_sys_admin
else
    caps=cap_net_raw,cap_bpf
fi

echo "== building fasttrace (release, Swift standard library linked statically, scratch path $scratch)"
build() {
    local log status=0
    log=$(swift build -c release --static-swift-stdlib --scratch-path "$scratch" "$@" 2>&1) || status=$?
    grep -Ev '^\[[0-9]+/[0-9]+\] |mktemp. is dangerous' <<<"$log" || true
    (( status == 0 )) || die "swift build $* failed"
}
build --product fasttrace
# The man page generator of swift-argument-parser's generate-manual plugin, run on the binary itself
# (the plugin would build the package again, without the static standard library).
build --product generate-manual
bindir=$(swift build -c release --static-swift-stdlib --scratch-path "$scratch" --show-bin-path)
[[ -x $bindir/fasttrace && -x $bindir/generate-manual ]] || die "the build did not produce $bindir/fasttrace"
if ldd "$bindir/fasttrace" | grep -E 'libswift|libFoundation|libdispatch|libBlocksRuntime|/opt/swift|/usr/lib/swift'; then
    die "$bindir/fasttrace still links the Swift runtime shared (above)"
fi

stage=$(mktemp -d /tmp/fasttrace-install.XXXXXX)
trap 'rm -rf "$stage"' EXIT
# The page is dated by the last commit, so the same source gives the same page. man-page.sh drops the
# implicit `help` subcommand generate-manual lists and writes every exit status.
date=$(git -C "$repo" log -1 --format=%cs 2>/dev/null || date +%F)
"$repo/scripts/man-page.sh" "$bindir/fasttrace" "$bindir/generate-manual" "$date" "$stage/fasttrace.1"
for shell in bash zsh fish; do
    "$bindir/fasttrace" --generate-completion-script "$shell" >"$stage/completion.$shell"
    [[ -s $stage/completion.$shell ]] || die "no $shell completion script"
done

# Directories this install creates (recorded so --uninstall removes them), plus those an earlier install
# created and recorded.
created=()
if [[ -f $manifest ]]; then
    while read -r kind path; do [[ $kind == dir && -d $path ]] && created+=("$path"); done <"$manifest"
fi
make_dir() {
    local d=$1 missing_dirs=()
    while [[ ! -d $d ]]; do missing_dirs=("$d" "${missing_dirs[@]}"); d=$(dirname "$d"); done
    for d in "${missing_dirs[@]}"; do
        mkdir -m 0755 -- "$d"
        created+=("$d")
    done
}
for f in "${files[@]}" "$manifest"; do make_dir "$(dirname "$f")"; done

# Stripped: the symbol tables are about 40 % of the file and nothing at run time reads them.
install -s -m 0755 "$bindir/fasttrace" "$bin"
if ! setcap "$caps+ep" "$bin"; then
    rm -f -- "$bin"
    die "setcap $caps+ep $bin failed: the filesystem under $prefix must support extended attributes"
fi
install -m 0644 "$stage/fasttrace.1" "$man"
install -m 0644 "$stage/completion.bash" "$bash_completion"
install -m 0644 "$stage/completion.zsh" "$zsh_completion"
install -m 0644 "$stage/completion.fish" "$fish_completion"
{
    for d in "${created[@]}"; do echo "dir $d"; done
    for f in "${files[@]}" "$manifest"; do echo "file $f"; done
} >"$manifest"
chmod 0644 "$manifest"

# A binary in a directory other users cannot search (a 0700 home, a private /tmp directory) is one only
# root can run, whatever its own mode and capabilities: say so, naming the directories.
closed=()
d=$(dirname "$bin")
while :; do
    [[ $(( $(stat -c '%#a' -- "$d") & 01 )) -ne 0 ]] || closed+=("$d ($(stat -c '%a' -- "$d"))")
    [[ $d == / ]] && break
    d=$(dirname "$d")
done
if (( ${#closed[@]} > 0 )); then
    echo "install.sh: warning: other users cannot search ${closed[*]}: only root can run $bin (chmod o+x, or install elsewhere)" >&2
fi

echo "install.sh: installed into $prefix:"
echo "  $bin  ($(getcap "$bin" | sed 's/^[^ ]* //'); $(du -h "$bin" | cut -f1))"
for f in "$man" "$bash_completion" "$zsh_completion" "$fish_completion"; do echo "  $f"; done
echo "install.sh: remove with: sudo $0 --uninstall $prefix"
