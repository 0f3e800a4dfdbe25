# probe.sh LIST OUT: writes values to sysctls and records what the kernel did.
# LIST lines: KEY TAB LABEL TAB VALUE. For each line the value is written (one write), read back,
# and the key's original value written back and checked. Label "set" instead writes a context
# value another key's probe needs (a kernel cross-check) and keeps it until a line labelled
# "unset" for the same key writes the original back. OUT lines:
#   KEY TAB LABEL TAB VALUE TAB ok|ERROR-TEXT|absent|read-only TAB READBACK TAB restored|not-restored
#
# Nothing forks between a write and its restore: a probed value such as kernel.threads-max=1 or
# vm.max_map_count=0 makes fork/exec fail, and busybox sh exits when it cannot fork. Writes use
# the builtin echo; reads go to an awk started beforehand that answers over two FIFOs (the
# builtin `read` reads one byte per read(2), and a sysctl file returns nothing at a non-zero
# offset, so the shell cannot read sysctls itself).
. /etc/lab/lib.sh
tab=$(printf '\t')
rm -f /tmp/.probe.q /tmp/.probe.a
mkfifo /tmp/.probe.q /tmp/.probe.a
awk '{ v = ""; r = (getline v < $0); close($0); print (r > 0 ? "=" v : "!"); fflush() }' \
    </tmp/.probe.q >/tmp/.probe.a &
exec 3>/tmp/.probe.q 4</tmp/.probe.a
while IFS=$tab read -r key label value; do
    f=$(key_path "$key")
    if [ ! -e "$f" ]; then
        printf '%s\t%s\t%s\tabsent\t\tnot-restored\n' "$key" "$label" "$value"; continue
    fi
    echo "$f" >&3; IFS= read -r orig <&4; orig=${orig#=}
    case $label in
    set)
        ctx_orig=$orig
        { echo "$value" >"$f"; } 2>/dev/null && result=ok || result=failed
        printf '%s\t%s\t%s\t%s\t%s\tkept\n' "$key" "$label" "$value" "$result" "$orig"
        continue ;;
    unset)
        { echo "$ctx_orig" >"$f"; } 2>/dev/null
        echo "$f" >&3; IFS= read -r now <&4; now=${now#=}
        [ "$now" = "$ctx_orig" ] && restored=restored || restored=not-restored
        printf '%s\t%s\t\tok\t%s\t%s\n' "$key" "$label" "$now" "$restored"
        continue ;;
    esac
    # echo, not printf: busybox's printf does not say why a write failed
    if { echo "$value" >"$f"; } 2>/tmp/.probe.err; then result=ok; else
        IFS= read -r result </tmp/.probe.err; result=${result##*: }; fi
    [ "$result" = "Permission denied" ] && result=read-only   # root's `test -w` says yes
    echo "$f" >&3; IFS= read -r back <&4; back=${back#=}
    { echo "$orig" >"$f"; } 2>/dev/null
    echo "$f" >&3; IFS= read -r now <&4; now=${now#=}
    [ "$now" = "$orig" ] && restored=restored || restored=not-restored
    printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$key" "$label" "$value" "${result:-error}" "$back" "$restored"
done <"$1" >"$2"
exec 3>&- 4<&-
wait
