#!/usr/bin/env bash
# CUDA compiler launcher (CMakeLists.txt): runs an nvcc command given --resource-usage and keeps ptxas's figures of
# its kernels beside the object, as OBJECT.ptxas.log, written after the object so that it is never older.
# scripts/kernel_resources.py reads them there instead of compiling every kernel a second time. The build's own
# output gets everything else nvcc printed: warnings, errors, and ptxas's coded notes (an injected warpgroup wait,
# serialized wgmmas), which it prints without --resource-usage too.
set -uo pipefail
args=("$@")
object=""
for ((i = 0; i + 1 < ${#args[@]}; i++)); do
    [[ ${args[i]} == -o ]] && object=${args[i + 1]}
done
if [[ -z $object || " $* " != *" --resource-usage "* ]]; then
    exec "$@"
fi
printed=$(mktemp) || exit 1
trap 'rm -f "$printed" "$object.ptxas.log.tmp"' EXIT
"$@" >"$printed" 2>&1
status=$?
figures='^ptxas info +: (Compiling entry function|Function properties for|Used [0-9]+ registers|[0-9]+ bytes gmem'
figures+='|Compile time)|^    [0-9]+ bytes stack frame'
grep -Ev "$figures" "$printed" >&2
if ((status == 0)); then
    # Written anew rather than copied, so that it gets the umask's mode and not mktemp's private one.
    cat "$printed" >"$object.ptxas.log.tmp" && mv -f "$object.ptxas.log.tmp" "$object.ptxas.log" ||
        { echo "ptxas_log.sh: cannot write $object.ptxas.log" >&2; status=1; }
else
    rm -f "$object.ptxas.log"
fi
exit "$status"
