#!/bin/sh
# Lab stand-in for ollama: answers /api/version, /api/tags and POST /api/generate like
# the real server, and /metrics in Prometheus's text format (requests by path and
# status, a latency histogram, resident memory). FLEETLAB_VERSION and FLEETLAB_MODE come
# from the image config; OLLAMA_HOST works as in ollama (scheme stripped, port 11434).
# Modes: ok; broken never listens (health check fails); crash exits 3 (restart loop);
# healthy but bad: slow (generate takes 3x as long), errors (one generate in ten
# answers 500), leak (each generate keeps 4 MiB more memory).
VERSION=${FLEETLAB_VERSION:-0.0.0}
MODE=${FLEETLAB_MODE:-ok}
ADDR=${OLLAMA_HOST:-127.0.0.1:11434}
ADDR=${ADDR#http://}
ADDR=${ADDR#https://}
case "$ADDR" in *:*) ;; *) ADDR="$ADDR:11434" ;; esac
case "$ADDR" in 0.0.0.0:*) ADDR="127.0.0.1:${ADDR#*:}" ;; esac
LOG=/tmp/requests.log          # one line per generate: status and seconds taken
LEAK=/dev/shm/leak             # tmpfs: counted as the container's memory
CR=$(printf '\r')

answer() {  # STATUS TYPE BODY
    printf 'HTTP/1.0 %s\r\nContent-Type: %s\r\nContent-Length: %s\r\n\r\n%s' \
        "$1" "$2" "${#3}" "$3"
}

metrics() {
    leaked=$(wc -c < "$LEAK" 2>/dev/null || echo 0)
    awk -v rss=$((20971520 + leaked)) '
        { count[$1]++; n++; sum += $2
          for (i = 1; i <= 6; i++) if ($2 <= le[i]) bucket[i]++ }
        BEGIN { split("0.025 0.05 0.1 0.25 0.5 1", le, " ") }
        END {
            print "# HELP ollama_requests_total Generate requests answered, by status."
            print "# TYPE ollama_requests_total counter"
            if (!("200" in count)) count["200"] = 0
            for (s in count) printf "ollama_requests_total{path=\"/api/generate\",status=\"%s\"} %d\n", s, count[s]
            print "# HELP ollama_request_duration_seconds Time to answer a generate request."
            print "# TYPE ollama_request_duration_seconds histogram"
            for (i = 1; i <= 6; i++) printf "ollama_request_duration_seconds_bucket{le=\"%s\"} %d\n", le[i], bucket[i]
            printf "ollama_request_duration_seconds_bucket{le=\"+Inf\"} %d\n", n
            printf "ollama_request_duration_seconds_sum %.3f\n", sum
            printf "ollama_request_duration_seconds_count %d\n", n
            print "# HELP process_resident_memory_bytes Resident memory size in bytes."
            print "# TYPE process_resident_memory_bytes gauge"
            printf "process_resident_memory_bytes %d\n", rss
        }' "$LOG" 2>/dev/null
}

generate() {
    delay=0.1
    [ "$MODE" = slow ] && delay=0.3
    sleep "$delay"
    status=200
    answered=$(wc -l < "$LOG")
    [ "$MODE" = errors ] && [ $(((answered + 1) % 10)) -eq 0 ] && status=500
    [ "$MODE" = leak ] && head -c 4194304 /dev/zero >> "$LEAK"
    echo "$status $delay" >> "$LOG"
    if [ "$status" = 200 ]; then
        answer "200 OK" application/json '{"model":"llama3.2:1b","response":"Hello!","done":true}'
    else
        answer "500 Internal Server Error" application/json '{"error":"llama runner process has terminated"}'
    fi
}

serve_one() {  # one HTTP request on standard input (nc -e)
    read -r method path _ || exit 0
    length=0
    while read -r line; do
        line=${line%"$CR"}
        [ -z "$line" ] && break
        case "$line" in [Cc]ontent-[Ll]ength:*) length=${line#*:}; length=${length# } ;; esac
    done
    [ "$length" -gt 0 ] 2>/dev/null && head -c "$length" >/dev/null
    case "$method $path" in
        "GET /api/version") answer "200 OK" application/json "{\"version\":\"$VERSION\"}" ;;
        "GET /api/tags") answer "200 OK" application/json "$(cat /www/api/tags)" ;;
        "GET /") answer "200 OK" text/plain "Ollama is running" ;;
        "GET /metrics") answer "200 OK" "text/plain; version=0.0.4" "$(metrics)
" ;;
        "POST /api/generate") generate ;;
        *) answer "404 Not Found" text/plain "404 page not found" ;;
    esac
}

case "${1:-serve}" in
    serve) ;;
    http) serve_one; exit 0 ;;
    --version|-v) echo "ollama version is $VERSION"; exit 0 ;;
    list)  # like `ollama list`: ask the server, fail when it does not answer
        wget -q -O - "http://$ADDR/api/tags" >/dev/null || {
            echo "Error: could not connect to ollama app, is it running?" >&2; exit 1; }
        echo "NAME           ID              SIZE      MODIFIED"
        echo "llama3.2:1b    baf6a787fdff    1.3 GB    1 year ago"
        exit 0 ;;
    *) echo "Error: unknown command \"$1\" for \"ollama\"" >&2; exit 1 ;;
esac

mkdir -p /www/api
printf '{"models":[{"name":"llama3.2:1b","model":"llama3.2:1b","modified_at":"2025-01-01T00:00:00Z","size":1321098329,"digest":"baf6a787fdffd633537aa2eb51cfd54cb93ff08e28040095462bb63daf552878","details":{"parent_model":"","format":"gguf","family":"llama","families":["llama"],"parameter_size":"1.2B","quantization_level":"Q8_0"}}]}\n' > /www/api/tags
: > "$LOG"

echo "time=$(date -u +%Y-%m-%dT%H:%M:%SZ) level=INFO msg=\"Listening on $ADDR (version $VERSION)\""
case "$MODE" in
    crash) echo "Error: could not start the runner: exit status 3" >&2; exit 3 ;;
    broken) sleep 2147483647 & ;;
    # lab hosts share one network, each with its own address: bind only ours;
    # busybox nc starts one shell per request
    *) nc -ll -p "${ADDR##*:}" "${ADDR%:*}" -e "$0" http & ;;
esac
CHILD=$!
trap 'kill "$CHILD" 2>/dev/null; exit 0' TERM INT
wait "$CHILD"
