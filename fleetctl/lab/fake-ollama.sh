#!/bin/sh
# Lab stand-in for ollama: answers /api/tags and /api/version like the real
# server, from busybox httpd. FLEETLAB_VERSION and FLEETLAB_MODE come from the
# image config; OLLAMA_HOST works as in ollama (scheme stripped, port 11434).
VERSION=${FLEETLAB_VERSION:-0.0.0}
MODE=${FLEETLAB_MODE:-ok}
ADDR=${OLLAMA_HOST:-127.0.0.1:11434}
ADDR=${ADDR#http://}
ADDR=${ADDR#https://}
case "$ADDR" in *:*) ;; *) ADDR="$ADDR:11434" ;; esac
case "$ADDR" in 0.0.0.0:*) ADDR="127.0.0.1:${ADDR#*:}" ;; esac
case "${1:-serve}" in
    serve) ;;
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
printf '{"version":"%s"}\n' "$VERSION" > /www/api/version
echo "Ollama is running" > /www/index.html

echo "time=$(date -u +%Y-%m-%dT%H:%M:%SZ) level=INFO msg=\"Listening on $ADDR (version $VERSION)\""
case "$MODE" in
    crash) echo "Error: could not start the runner: exit status 3" >&2; exit 3 ;;
    broken) sleep 2147483647 & ;;
    *) httpd -f -p "$ADDR" -h /www & ;;
esac
CHILD=$!
trap 'kill "$CHILD" 2>/dev/null; exit 0' TERM INT
wait "$CHILD"
