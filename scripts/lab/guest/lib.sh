# Shell helpers for kernel-lab guests (busybox sh). Sourced by /init; run commands get them by
# `. /etc/lab/lib.sh`.
#
#   labmod NAME|@GROUP... load modules (and their dependencies) from the lists the host wrote
#   check NAME ok|fail [DETAIL]   one result line the host tallies
#   key_path KEY          /proc/sys path of a dotted key ('/' inside a component stands for '.')
#   raw KEY               the file's exact content, as `od` hex (byte-identical comparisons)

# Debian's busybox sh runs its own applets before searching PATH: name procps' sysctl explicitly.
sysctl() { /usr/sbin/sysctl "$@"; }

labmod() {
    _rc=0
    for _m in "$@"; do
        case $_m in @*) labmod $(cat "/etc/lab/modgroup/${_m#@}") || _rc=1; continue ;; esac
        if [ ! -f "/etc/lab/mod/$_m" ]; then
            echo "labmod: no module $_m"; _rc=1; continue
        fi
        while read -r _f; do
            _n=${_f##*/}; _n=${_n%.ko}; _n=$(echo "$_n" | tr - _)
            [ -d "/sys/module/$_n" ] && continue
            insmod "$_f" 2>/tmp/.insmod.err || {
                grep -q "exists" /tmp/.insmod.err || { echo "labmod: $_f: $(cat /tmp/.insmod.err)"; _rc=1; }
            }
        done <"/etc/lab/mod/$_m"
    done
    return $_rc
}

check() {
    _name=$1; _result=$2; shift 2
    echo "@@CHECK $_result $_name${*:+ -- $*}"
}

key_path() {
    # dots separate components; a '/' in the key is a literal dot inside one component
    echo "/proc/sys/$(echo "$1" | tr './' '/.')"
}

raw() {
    od -An -v -tx1 "$(key_path "$1")" | tr -d ' \n'
}

sysval() {
    cat "$(key_path "$1")"
}
