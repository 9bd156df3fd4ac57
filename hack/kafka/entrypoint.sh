#!/bin/bash
# The Kafka image's entrypoint (built by hack/inshape_hack/kafka_image.py):
#   1. server.properties = the baked-in defaults, then one line per KAFKA_CFG_* variable
#      (KAFKA_CFG_ADVERTISED_LISTENERS=x -> advertised.listeners=x, and ___ is a dash:
#      KAFKA_CFG_A_SCRAM___SHA___512_B=x -> a.scram-sha-512.b=x; a later line wins);
#   2. the KRaft storage is formatted only when log.dirs holds no meta.properties yet, so a
#      container restarted on the same data volume keeps its records and cluster id;
#   3. the broker is exec'd (PID 1: SIGTERM reaches it and it shuts down cleanly).
# `entrypoint.sh render` prints the properties and exits; any other arguments run as given.
set -euo pipefail

KAFKA_HOME=${KAFKA_HOME:-/opt/kafka}
config=${KAFKA_CONFIG_FILE:-/tmp/server.properties}
classpath=("-Dlog4j2.configurationFile=$KAFKA_HOME/config/log4j2.properties" -cp "$KAFKA_HOME/libs/*")

render() {
    cat "$KAFKA_HOME/config/defaults.properties"
    echo "# from KAFKA_CFG_* variables"
    local name key
    for name in $(compgen -e KAFKA_CFG_ || true); do
        key=${name#KAFKA_CFG_}
        key=${key,,}
        key=${key//___/-}
        printf '%s=%s\n' "${key//_/.}" "${!name}"
    done
}

# A KRaft cluster id: 16 random bytes in URL-safe base64 without padding, as kafka-storage
# makes; never one starting with '-', which the tool would read as an option.
new_cluster_id() {
    local id
    for _ in 1 2 3 4 5 6 7 8; do
        id=$(head -c 16 /dev/urandom | basenc --base64url)
        id=${id%%=*}
        if [[ $id != -* ]]; then
            echo "$id"
            return 0
        fi
    done
    echo "kafka-entrypoint: no usable cluster id in 8 draws" >&2
    return 1
}

case ${1:-} in
    render)
        render
        exit 0
        ;;
    "") ;;
    *) exec "$@" ;;
esac

render >"$config"
log_dir=$(sed -n 's/^log\.dirs=//p' "$config" | tail -n 1)
log_dir=${log_dir%%,*}
if [[ -e $log_dir/meta.properties ]]; then
    echo "kafka-entrypoint: $log_dir is formatted ($(grep '^cluster.id=' "$log_dir/meta.properties"))" >&2
else
    cluster_id=${KAFKA_CLUSTER_ID:-$(new_cluster_id)}
    echo "kafka-entrypoint: formatting $log_dir for cluster.id=$cluster_id" >&2
    java -Xmx128m -XX:-UsePerfData "${classpath[@]}" kafka.tools.StorageTool format \
        --cluster-id "$cluster_id" --config "$config" --ignore-formatted
fi

read -ra heap <<<"${KAFKA_HEAP_OPTS:-}"
read -ra jvm <<<"${KAFKA_JVM_OPTS:--XX:+UseG1GC -XX:MaxGCPauseMillis=20 -XX:+ExitOnOutOfMemoryError -XX:-UsePerfData}"
exec java "${heap[@]}" "${jvm[@]}" "${classpath[@]}" kafka.Kafka "$config"
