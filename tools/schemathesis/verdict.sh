# shellcheck shell=bash
# Tells what a schemathesis 4.x run's end means, from its exit status and its output, so that
# scripts/schemathesis can say whether the API failed or the fuzzer did. Sourced, not run.
#
# The exit status alone cannot tell them apart: schemathesis exits 1 both when checks failed and
# when a test raised inside schemathesis or hypothesis (a "Runtime Error", e.g. the SystemError of
# issue 10), and Python exits 1 on an uncaught exception too. So the output decides:
#   - the run ends with a SUMMARY section and a final banner ("==== 2 failures in 3.1s ====");
#   - API failures are listed under FAILURES and counted in the banner as failures;
#   - errors are listed under ERRORS, counted in the banner, and titled in the summary's
#     "Errors:" block ("  🚫 Network Error: 1");
#   - exit 2 means the run could not do its job (configuration, schema loading, internal error),
#     130 an interrupt; anything else is not schemathesis's own.

# The error titles that mean the API did not answer (it died, refused, or hung), not that the
# fuzzer broke; every other title (Runtime Error, Schema Error, Hook Error, …) is the fuzzer's.
SCHEMATHESIS_API_ERROR_TITLES='Network Error|Unresponsive Operation|Unhealthy API|Server Unavailable'

# schemathesis_verdict STATUS LOG TIMED_OUT
#   STATUS     the exit status of the schemathesis command
#   LOG        a file holding its stdout and stderr (run with --no-color)
#   TIMED_OUT  1 when the caller's time limit stopped the run, else 0
# Prints one line: a class, a tab, and a message for people. Classes, first match wins:
#   timed_out       the time limit stopped the run
#   fuzzer_crashed  schemathesis or hypothesis crashed or errored: no verdict on the API
#   api_failed      the API failed checks, or stopped answering
#   passed          exit 0 with the "No issues found" banner
schemathesis_verdict() {
    local status=$1 log=$2 timed_out=${3:-0}
    if [ "$timed_out" = 1 ]; then
        printf 'timed_out\tthe run was stopped by the time limit (exit %s) before it finished\n' \
            "$status"
        return 0
    fi

    # Everything but the FAILURES section, which quotes the API's responses: what the API sent
    # must not be mistaken for a traceback of the fuzzer's.
    local own
    own=$(awk '/^=+ [A-Z][A-Z ]* =+$/ { in_failures = ($0 ~ /^=+ FAILURES =+$/) }
               !in_failures' "$log")

    # The final banner: the last "==== … ====" line, unless that is a section heading.
    local banner=""
    if grep -Eq '^=+ SUMMARY =+$' <<<"$own"; then
        banner=$(grep -E '^=+ .+ =+$' <<<"$own" | tail -n 1 | sed -E 's/^=+ (.*) =+$/\1/')
        if [ "$banner" = SUMMARY ]; then banner=""; fi
    fi
    local failures errors
    failures=$(sed -nE 's/^([0-9]+) failures?([, ].*)?$/\1/p' <<<"$banner")
    errors=$(sed -nE 's/^(.*, )?([0-9]+) errors?([, ].*)?$/\2/p' <<<"$banner")
    failures=${failures:-0}
    errors=${errors:-0}
    # Titles of the summary's "Errors:" block, one per line.
    local titles
    titles=$(awk '/^Errors:$/ { on = 1; next } on && /^$/ { on = 0 }
                  on { sub(/^ *[^ ]+ +/, ""); sub(/: [0-9]+$/, ""); print }' <<<"$own")
    local also=""
    if [ "$failures" -gt 0 ]; then
        also="; it also reported $failures API failure(s), see FAILURES in $log"
    fi

    local crash
    crash=$(grep -Em 1 'Traceback \(most recent call last\)|SystemError|INTERNALERROR|Test Execution Error|An internal error occurred' <<<"$own" || true)
    if [ -n "$crash" ]; then
        # Name the exception itself when there is one ("SystemError: AST constructor …").
        local exception
        exception=$(grep -E '^ *[A-Za-z_][A-Za-z0-9_.]*(Error|Exception)(: .*)?$' <<<"$own" |
            tail -n 1 || true)
        crash=${exception:-$crash}
        printf 'fuzzer_crashed\tschemathesis crashed (%s); this says nothing about the API%s\n' \
            "$(sed -E 's/^ +//' <<<"$crash")" "$also"
        return 0
    fi
    case "$status" in
    0 | 1) ;;
    2)
        printf 'fuzzer_crashed\tschemathesis could not do its job (exit 2: configuration, schema loading or internal error)%s\n' \
            "$also"
        return 0
        ;;
    *)
        printf 'fuzzer_crashed\tschemathesis ended with exit %s, not one of its own (0, 1, 2)%s\n' \
            "$status" "$also"
        return 0
        ;;
    esac
    if [ -z "$banner" ]; then
        printf 'fuzzer_crashed\tschemathesis exited %s without its summary: it did not finish\n' \
            "$status"
        return 0
    fi
    if [ "$errors" -gt 0 ]; then
        local foreign
        foreign=$(grep -Ev "^($SCHEMATHESIS_API_ERROR_TITLES)\$" <<<"$titles" || true)
        if [ -n "$foreign" ] || [ -z "$titles" ]; then
            printf 'fuzzer_crashed\tschemathesis reported %s error(s) of its own (%s), see ERRORS in %s%s\n' \
                "$errors" "$(paste -sd, <<<"${foreign:-unknown}")" "$log" "$also"
            return 0
        fi
        printf 'api_failed\tthe API stopped answering (%s), see ERRORS in %s%s\n' \
            "$(paste -sd, <<<"$titles")" "$log" "$also"
        return 0
    fi
    if [ "$failures" -gt 0 ]; then
        printf 'api_failed\tthe API failed %s check(s): %s, see FAILURES in %s\n' \
            "$failures" "$banner" "$log"
        return 0
    fi
    if [ "$status" -ne 0 ]; then
        printf 'fuzzer_crashed\tschemathesis exited %s without reporting a failure or an error (%s)\n' \
            "$status" "$banner"
        return 0
    fi
    printf 'passed\t%s\n' "$banner"
}
