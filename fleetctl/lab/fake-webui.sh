#!/bin/sh
# Lab stand-in for Open WebUI: answers /health like the real server, from
# busybox httpd on $HOST:$PORT. FLEETLAB_MODE as in fake-ollama.sh.
MODE=${FLEETLAB_MODE:-ok}
ADDR="${HOST:-0.0.0.0}:${PORT:-8080}"
mkdir -p /www
printf '{"status":true}\n' > /www/health
printf '{"version":"%s"}\n' "${FLEETLAB_VERSION:-0.0.0}" > /www/version
echo "INFO:     Uvicorn running on http://$ADDR (Press CTRL+C to quit)"
case "$MODE" in
    crash) echo "ERROR: could not connect to the database" >&2; exit 3 ;;
    broken) sleep 2147483647 & ;;
    *) httpd -f -p "$ADDR" -h /www & ;;
esac
CHILD=$!
trap 'kill "$CHILD" 2>/dev/null; exit 0' TERM INT
wait "$CHILD"
