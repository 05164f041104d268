#!/usr/bin/env bash
# Mutation testing with cosmic-ray (docs/MUTATION.md): every module listed under [mutation] in setup.cfg is mutated
# one change at a time, and the tests listed there (the module's own list `tests.<module>` if it has one, else
# `tests`; the module's own test file first, then in the listed order, stopping at the first failure) run against
# each mutant. Needs `pip install -e '.[mutation]'`.
#
#   tools/mutation.sh [-j JOBS] [-o DIR] [-r] [MODULE ...]    # default: setup.cfg's modules, 1 job, DIR=mutation
#
# -r resumes the sessions already in DIR instead of starting afresh: their surviving mutants are run again against
# the tests as they are now (tools/mutation_retest.py: the tests written for them need not wait for a whole new run),
# then the mutants never run (a run that was stopped) are run.
#
# cosmic-ray edits the files it mutates in place, so each module is tested in its own copy of the working tree (in a
# temporary directory): the tree itself is never touched, even if a run is killed. JOBS modules run at once. DIR gets
# one cosmic-ray session per module (<module>.sqlite, readable with cr-report), summary.txt (mutants generated,
# skipped as equivalent by tools/mutation_filter.py, killed, survived, incompetent) and survivors.txt (each
# surviving mutant's diff). With p2pzmq/wire.py, the hand-made mutants of the code templates it compiles (cosmic-ray
# does not mutate text inside strings) run after the sessions: tools/mutation_templates.py, outcomes in
# templates.txt, counts in summary.txt.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
jobs=1
out="$root/mutation"
resume=false
while getopts "j:o:r" option; do
    case "$option" in
        j) jobs="$OPTARG" ;;
        o) out="$(realpath -m "$OPTARG")" ;;
        r) resume=true ;;
        *) sed -n '2,14p' "$0"; exit 2 ;;
    esac
done
shift $((OPTIND - 1))

setting() {  # the first of the named [mutation] settings of setup.cfg that is set, as space-separated words
    python3 -c 'import configparser, sys
cfg = configparser.ConfigParser(); cfg.read(sys.argv[1]); section = cfg["mutation"]
print(" ".join(next(section[key] for key in sys.argv[2:] if key in section).split()))' "$root/setup.cfg" "$@"
}
modules=("$@")
[ ${#modules[@]} -gt 0 ] || read -r -a modules <<< "$(setting modules)"
timeout="$(setting timeout)"
mkdir -p "$out"
scratch="$(mktemp -d)"
trap 'rm -rf "$scratch"' EXIT

mutate() {  # one module, in its own copy of the tree
    local module="$1" name copy
    name="$(basename "$module" .py)"
    copy="$scratch/$name"
    local ordered="" test
    # the module's own test file first: most of its mutants die there, quickly
    for test in $(setting "tests.$name" tests); do
        if [ "$test" = "tests/test_$name.py" ]; then ordered="$test $ordered"; else ordered="$ordered $test"; fi
    done
    mkdir -p "$copy"
    $resume || : > "$out/$name.log"
    tar -C "$root" --exclude=.venv --exclude=.git --exclude=mutation -cf - . | tar -C "$copy" -xf -
    cat > "$copy/mutation.toml" <<EOF
[cosmic-ray]
module-path = "$module"
timeout = $timeout
excluded-modules = []
test-command = "python -m pytest -x -q $ordered"

[cosmic-ray.distributor]
name = "local"
EOF
    (
        cd "$copy"
        export PYTHONPATH="$copy"  # the copy's package, not the one installed from the tree
        if $resume; then
            python "$root/tools/mutation_retest.py" "$out/$name.sqlite" "$timeout" "python -m pytest -x -q $ordered"
        else
            rm -f "$out/$name.sqlite"
            cosmic-ray init mutation.toml "$out/$name.sqlite"
            python "$root/tools/mutation_filter.py" "$out/$name.sqlite"  # annotations: equivalent, never run
        fi
        cosmic-ray --verbosity ERROR exec mutation.toml "$out/$name.sqlite"
    ) >> "$out/$name.log" 2>&1 || echo "$module: cosmic-ray stopped early, see $out/$name.log" >&2
}

summarize() {  # generated / killed / survived / incompetent / pending, per session
    for session in "$@"; do
        cosmic-ray dump "$session" | python3 -c 'import collections, json, sys
counts = collections.Counter()
for line in sys.stdin:
    _, result = json.loads(line)
    counts["generated"] += 1
    counts["pending" if result is None else result["test_outcome"] or result["worker_outcome"]] += 1
print(sys.argv[1], " ".join(f"{key} {counts[key]}" for key in
                            ("generated", "skipped", "killed", "survived", "incompetent", "pending")))' \
            "$(basename "$session" .sqlite)"
    done
}

# The tests must pass before any mutant means anything: every list of the modules to mutate, each test file once.
tests="$(for module in "${modules[@]}"; do setting "tests.$(basename "$module" .py)" tests; done | tr ' ' '\n' \
         | awk '!seen[$0]++' | tr '\n' ' ')"
(cd "$root" && python -m pytest -q $tests > "$out/baseline.log" 2>&1) \
    || { echo "the tests fail unmutated: see $out/baseline.log" >&2; exit 1; }
running=0
for module in "${modules[@]}"; do
    mutate "$module" &
    running=$((running + 1))
    if [ "$running" -ge "$jobs" ]; then
        wait -n || true  # one module's failure must not end the others (nor delete their copies)
        running=$((running - 1))
    fi
done
wait || true
sessions=()
for module in "${modules[@]}"; do
    sessions+=("$out/$(basename "$module" .py).sqlite")
done
for session in "${sessions[@]}"; do
    cr-report --show-diff --surviving-only "$session"
done > "$out/survivors.txt"
summarize "${sessions[@]}" > "$out/summary.txt"
if printf '%s\n' "${modules[@]}" | grep -qx 'p2pzmq/wire.py'; then
    python "$root/tools/mutation_templates.py" $(setting tests.wire tests) > "$out/templates.txt" \
        || echo "the template mutants stopped early, see $out/templates.txt" >&2
    grep '^survived' "$out/templates.txt" >> "$out/survivors.txt" || true
    tail -n 1 "$out/templates.txt" >> "$out/summary.txt"
fi
cat "$out/summary.txt"
echo "survivors with their diffs: $out/survivors.txt"
