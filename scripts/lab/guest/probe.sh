# probe.sh LIST OUT: writes values to sysctls and records what the kernel did.
# LIST lines: KEY TAB LABEL TAB VALUE [TAB PAIR]. For each line the value is written (one write),
# read back, and the key's original value written back and checked. Label "self" writes the
# key's own value (VALUE is empty). PAIR names a key writing this one zeroes (vm.dirty_bytes and
# vm.dirty_ratio): when the original cannot be written back, the pair's original is. Label "set"
# instead writes a context value another key's probe needs (a kernel cross-check) and keeps it
# until a line labelled "unset" for the same key writes the original back. A key whose "self"
# write fails (and has no PAIR) gets no further writes. OUT lines:
#   KEY TAB LABEL TAB VALUE TAB ok|ERROR-TEXT|absent|read-only TAB READBACK TAB
#   restored|not-restored TAB unchanged|changed   (READBACK equal to the original or not)
#
# Nothing forks between a write and its restore: a probed value such as kernel.threads-max=1 or
# vm.max_map_count=0 makes fork/exec fail, and busybox sh exits when it cannot fork. Writes use
# the builtin echo; reads go to an awk started beforehand that answers over two FIFOs (the
# builtin `read` reads one byte per read(2), and a sysctl file returns nothing at a non-zero
# offset, so the shell cannot read sysctls itself).
. /etc/lab/lib.sh
tab=$(printf '\t')
refused=
rm -f /tmp/.probe.q /tmp/.probe.a
mkfifo /tmp/.probe.q /tmp/.probe.a
awk '{ v = ""; r = (getline v < $0); close($0); print (r > 0 ? "=" v : "!"); fflush() }' \
    </tmp/.probe.q >/tmp/.probe.a &
exec 3>/tmp/.probe.q 4</tmp/.probe.a
while IFS=$tab read -r key label value pair; do
    f=$(key_path "$key")
    if [ ! -e "$f" ]; then
        printf '%s\t%s\t%s\tabsent\t\tnot-restored\tchanged\n' "$key" "$label" "$value"
        continue
    fi
    echo "$f" >&3; IFS= read -r orig <&4; orig=${orig#=}
    case $label in
    set)
        ctx_orig=$orig
        { echo "$value" >"$f"; } 2>/dev/null && result=ok || result=failed
        printf '%s\t%s\t%s\t%s\t%s\tkept\tchanged\n' "$key" "$label" "$value" "$result" "$orig"
        continue ;;
    unset)
        { echo "$ctx_orig" >"$f"; } 2>/dev/null
        echo "$f" >&3; IFS= read -r now <&4; now=${now#=}
        [ "$now" = "$ctx_orig" ] && restored=restored || restored=not-restored
        printf '%s\t%s\t\tok\t%s\t%s\tunchanged\n' "$key" "$label" "$now" "$restored"
        continue ;;
    self) value=$orig ;;
    esac
    [ "$key" = "$refused" ] && continue
    pf= pair_orig= pair_now=
    if [ -n "$pair" ]; then
        pf=$(key_path "$pair"); echo "$pf" >&3; IFS= read -r pair_orig <&4; pair_orig=${pair_orig#=}
    fi
    # echo, not printf: busybox's printf does not say why a write failed
    if { echo "$value" >"$f"; } 2>/tmp/.probe.err; then result=ok; else
        IFS= read -r result </tmp/.probe.err; result=${result##*: }; fi
    [ "$result" = "Permission denied" ] && result=read-only   # root's `test -w` says yes
    echo "$f" >&3; IFS= read -r back <&4; back=${back#=}
    [ "$back" = "$orig" ] && kept=unchanged || kept=changed
    { echo "$orig" >"$f"; } 2>/dev/null
    if [ -n "$pf" ]; then
        echo "$pf" >&3; IFS= read -r pair_now <&4; pair_now=${pair_now#=}
        [ "$pair_now" = "$pair_orig" ] || { echo "$pair_orig" >"$pf"; } 2>/dev/null
        echo "$pf" >&3; IFS= read -r pair_now <&4; pair_now=${pair_now#=}
    fi
    echo "$f" >&3; IFS= read -r now <&4; now=${now#=}
    [ "$now" = "$orig" ] && [ "${pair_now-}" = "${pair_orig-}" ] && restored=restored || restored=not-restored
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$key" "$label" "$value" "${result:-error}" "$back" "$restored" "$kept"
    # a key that refuses its own value and has no pair to restore it through is not probed
    [ "$label" = self ] && [ "$result" != ok ] && [ -z "$pair" ] && refused=$key
done <"$1" >"$2"
exec 3>&- 4<&-
wait
