# dump.sh FILE: every file under /proc/sys as one line: MODE, PATH, ok|err, VALUE (tab separated;
# backslash, tab and newline in the value escaped as \\ \t \n; "err" when it cannot be read).
# -xdev keeps out binfmt_misc (a file system of its own, mounted below /proc/sys). Three
# processes for the whole tree (find, stat, awk): a fork per file is slow under TCG.
find /proc/sys -xdev -type f | xargs stat -c '%a %n' | awk '
{
    mode = $1; path = substr($0, length($1) + 2)
    value = ""; n = 0
    while ((r = (getline line < path)) > 0) { value = (n++ ? value "\n" : "") line }
    close(path)
    gsub(/\\/, "\\\\", value); gsub(/\t/, "\\t", value); gsub(/\n/, "\\n", value)
    print mode "\t" path "\t" (r < 0 ? "err" : "ok") "\t" value
}' >"$1"
