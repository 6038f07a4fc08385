#!/usr/bin/env bash
# Runs a real single-node Apache Kafka broker (KRaft, broker and controller in one
# process) on 127.0.0.1 for the integration tests.
#
#   broker.sh start                         fetch the jars if needed, format a fresh
#                                           data directory, start, wait until it responds
#   broker.sh start --keep-data             start on the data directory an earlier start
#                                           formatted, keeping its topics, offsets and
#                                           transactions (stopping the broker first if it runs)
#   broker.sh restart                       the same as start --keep-data: a broker restart
#                                           as clients see it in production
#   broker.sh stop                          stop it (SIGTERM, then SIGKILL), or do nothing if
#                                           stopped. The data directory stays as it is
#   broker.sh status                        exit 0 if it runs and responds to metadata requests
#   broker.sh create-topic NAME PARTITIONS  create a topic and wait until metadata shows it
#   broker.sh bootstrap                     print the bootstrap address
#
# Environment (all optional):
#   C2M_KAFKA_PORT           broker port (default 19092). The controller uses port + 1
#   C2M_KAFKA_VERSION        Kafka release from Maven Central (default 4.4.0)
#   C2M_CACHE_DIR            jar cache root (default $HOME/.cache/chatt2me-worker). The
#                            jars go to kafka-<version> below it and are fetched only once
#   C2M_KAFKA_DATA_DIR       data directory, wiped at start unless --keep-data is given
#                            (default /tmp/chatt2me-kafka-<port>)
#   C2M_KAFKA_START_TIMEOUT  seconds to wait for the broker to respond (default 90)
#   C2M_KAFKA_STOP_TIMEOUT   seconds to wait after SIGTERM before SIGKILL (default 30)
#   C2M_KAFKA_HEAP           maximum Java heap (default 512m)
#   JAVA_HOME                Java 17 or newer to use. Without it: `java` on PATH, else a
#                            JDK under /usr/lib/jvm
# Needs: mvn (first start only), kcat, Java 17 or newer.
set -euo pipefail

script_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

kafka_version=${C2M_KAFKA_VERSION:-4.4.0}
port=${C2M_KAFKA_PORT:-19092}
cache_root=${C2M_CACHE_DIR:-${HOME:-/tmp}/.cache/chatt2me-worker}
lib_dir=$cache_root/kafka-$kafka_version
start_timeout=${C2M_KAFKA_START_TIMEOUT:-90}
stop_timeout=${C2M_KAFKA_STOP_TIMEOUT:-30}
heap=${C2M_KAFKA_HEAP:-512m}

# Written into every data directory this script creates. A directory without it is
# never wiped, so a wrong C2M_KAFKA_DATA_DIR cannot delete someone's files.
data_marker=.chatt2me-test-broker

log() { printf 'broker.sh: %s\n' "$*" >&2; }
die() {
    log "error: $*"
    exit 1
}

is_uint() { [[ $1 =~ ^[0-9]+$ ]]; }

check_settings() {
    if ! is_uint "$port" || ((port < 1024 || port > 65534)); then
        die "invalid C2M_KAFKA_PORT '$port': expected a port from 1024 to 65534"
    fi
    controller_port=$((port + 1))
    bootstrap=127.0.0.1:$port
    data_dir=${C2M_KAFKA_DATA_DIR:-/tmp/chatt2me-kafka-$port}
    [[ $data_dir == /?* && $data_dir != *//* ]] ||
        die "invalid C2M_KAFKA_DATA_DIR '$data_dir': expected an absolute path other than /"
    pid_file=$data_dir/broker.pid
    is_uint "$start_timeout" || die "invalid C2M_KAFKA_START_TIMEOUT '$start_timeout': expected seconds"
    is_uint "$stop_timeout" || die "invalid C2M_KAFKA_STOP_TIMEOUT '$stop_timeout': expected seconds"
    [[ $kafka_version =~ ^[0-9]+\.[0-9]+\.[0-9]+$ ]] ||
        die "invalid C2M_KAFKA_VERSION '$kafka_version': expected X.Y.Z"
}

# Prints the major version of the Java runtime $1, or nothing if it does not run.
java_major() {
    local version
    version=$("$1" -version 2>&1 | awk -F'"' '/ version "/ { print $2; exit }') || return 0
    version=${version#1.} # Java 8 and older report 1.N
    printf '%s\n' "${version%%[.-]*}"
}

# Sets $java to a Java 17+ runtime: $JAVA_HOME, then PATH, then /usr/lib/jvm.
find_java() {
    local candidate major candidates=()
    [[ -n ${JAVA_HOME:-} ]] && candidates+=("$JAVA_HOME/bin/java")
    candidate=$(command -v java || true)
    [[ -n $candidate ]] && candidates+=("$candidate")
    for candidate in /usr/lib/jvm/*/bin/java; do
        [[ -x $candidate ]] && candidates+=("$candidate")
    done
    for candidate in "${candidates[@]}"; do
        [[ -x $candidate ]] || continue
        major=$(java_major "$candidate")
        if is_uint "$major" && ((major >= 17)); then
            java=$candidate
            return 0
        fi
    done
    die "no Java 17 or newer found (tried JAVA_HOME, PATH and /usr/lib/jvm); run scripts/install-deps"
}

# Fills $lib_dir with the Kafka jars from Maven Central unless an earlier run did.
# The jars land in a temporary directory that is renamed when complete, so an
# interrupted download or a concurrent start never leaves a half-filled cache.
fetch_jars() {
    [[ -f $lib_dir/.complete ]] && return 0
    command -v mvn >/dev/null || die "mvn not found, but the first start needs Maven to fetch the Kafka jars: run scripts/install-deps"

    mkdir -p "$cache_root"
    local tmp started=$SECONDS
    tmp=$(mktemp -d "$cache_root/.kafka-$kafka_version.XXXXXX")
    chmod 755 "$tmp"
    log "fetching Kafka $kafka_version jars with Maven into $lib_dir"
    # Debian's Maven 3.8 prints colour codes even in batch mode, so its output is
    # kept and shown, without them, only when it fails.
    if ! mvn -B -q -f "$script_dir/pom.xml" -Dkafka.version="$kafka_version" \
        dependency:copy-dependencies -DincludeScope=runtime -DoutputDirectory="$tmp" \
        </dev/null >"$tmp.log" 2>&1; then
        sed 's/\x1b\[[0-9;]*m//g' "$tmp.log" >&2
        rm -rf "$tmp" "$tmp.log"
        die "Maven failed to fetch Kafka $kafka_version (its output is above)"
    fi
    rm -f "$tmp.log"
    if [[ ! -f $tmp/kafka_2.13-$kafka_version.jar ]]; then
        rm -rf "$tmp"
        die "Maven finished but kafka_2.13-$kafka_version.jar is missing"
    fi
    touch "$tmp/.complete"

    # A directory without .complete is left from a run killed before the rename.
    [[ -d $lib_dir && ! -f $lib_dir/.complete ]] && rm -rf "$lib_dir"
    if ! mv -T "$tmp" "$lib_dir" 2>/dev/null; then
        rm -rf "$tmp" # another start finished first
        [[ -f $lib_dir/.complete ]] || die "could not move the Kafka jars to $lib_dir"
    fi
    log "fetched Kafka $kafka_version jars in $((SECONDS - started)) s"
}

# Runs a Kafka tool class ($1) with the remaining arguments. Its logs go to tools.log.
run_kafka_tool() {
    local class=$1
    shift
    "$java" -Xmx256m -cp "$lib_dir/*" \
        -Dlog4j2.configurationFile="file:$script_dir/log4j2.properties" \
        -Dkafka.logs.dir="$data_dir" -Dc2m.log.name=tools.log \
        "$class" "$@"
}

# Prints the pid from the pid file if that process is this port's broker.
broker_pid() {
    local pid
    [[ -f $pid_file ]] || return 1
    pid=$(<"$pid_file")
    is_uint "$pid" || return 1
    [[ -r /proc/$pid/cmdline ]] || return 1
    # A zombie has an empty cmdline, so it does not count as running. The output is
    # read whole before grep because, with pipefail, an early-exiting grep -q could
    # fail the pipeline through SIGPIPE.
    local args
    args=$(tr '\0' '\n' <"/proc/$pid/cmdline" 2>/dev/null) || return 1
    grep -qxF -e kafka.Kafka <<<"$args" || return 1
    grep -qxF -e "-Dkafka.logs.dir=$data_dir" <<<"$args" || return 1
    printf '%s\n' "$pid"
}

# True once the broker returns metadata listing itself.
broker_responds() {
    command -v kcat >/dev/null || die "kcat not found; run scripts/install-deps"
    local metadata
    metadata=$(kcat -L -b "$bootstrap" -m 2 2>/dev/null) || return 1
    grep -qF "broker 1 at 127.0.0.1:$port" <<<"$metadata"
}

port_in_use() {
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

show_logs() {
    local file
    for file in "$data_dir/kafka.out" "$data_dir/server.log"; do
        [[ -s $file ]] || continue
        log "last lines of $file:"
        tail -n 40 "$file" >&2
    done
}

wipe_data_dir() {
    if [[ -e $data_dir ]]; then
        if [[ ! -f $data_dir/$data_marker ]] && [[ -n $(ls -A "$data_dir") ]]; then
            die "$data_dir exists and was not created by broker.sh; remove it or set C2M_KAFKA_DATA_DIR"
        fi
        rm -rf "$data_dir"
    fi
    mkdir -p "$data_dir"
    touch "$data_dir/$data_marker"
}

write_config() {
    sed -e "s|@BROKER_PORT@|$port|g" \
        -e "s|@CONTROLLER_PORT@|$controller_port|g" \
        -e "s|@LOG_DIR@|$data_dir/kraft|g" \
        "$script_dir/server.properties.in" >"$data_dir/server.properties"
}

# Prints a random Kafka cluster id: 16 random bytes, URL-safe base64 without
# padding, as kafka-storage.sh random-uuid does (it also avoids a leading '-').
new_cluster_id() {
    local id
    while :; do
        id=$(head -c 16 /dev/urandom | base64 | tr '+/' '-_' | cut -c1-22)
        [[ $id != -* ]] && break
    done
    printf '%s\n' "$id"
}

# Fails unless $data_dir contains KRaft storage formatted by an earlier start.
check_kept_data_dir() {
    [[ -f $data_dir/$data_marker ]] ||
        die "cannot keep the data in $data_dir: no earlier '$0 start' created it; run '$0 start' first"
    [[ -f $data_dir/kraft/meta.properties ]] ||
        die "cannot keep the data in $data_dir: it holds no formatted KRaft storage; run '$0 start' first"
}

# Starts the broker. With keep_data=1 ($1) the data directory and its KRaft
# storage are reused as they are; otherwise they are wiped and formatted anew.
cmd_start() {
    local keep_data=$1
    find_java
    fetch_jars
    ((keep_data)) && check_kept_data_dir
    if broker_pid >/dev/null; then
        if ((keep_data)); then
            log "restarting the broker on port $port; its data in $data_dir is kept"
        else
            log "stopping the broker left running on port $port by an earlier start"
        fi
        cmd_stop
    fi
    local p
    for p in "$port" "$controller_port"; do
        port_in_use "$p" && die "port $p on 127.0.0.1 is already in use; stop that process or set C2M_KAFKA_PORT"
    done

    local started=$SECONDS
    if ((keep_data)); then
        write_config
    else
        wipe_data_dir
        write_config
        local cluster_id
        cluster_id=$(new_cluster_id)
        if ! run_kafka_tool kafka.tools.StorageTool format -t "$cluster_id" \
            -c "$data_dir/server.properties" >"$data_dir/format.log" 2>&1; then
            cat "$data_dir/format.log" >&2
            die "formatting the KRaft storage in $data_dir failed"
        fi
    fi

    # nohup and closed standard streams: the broker outlives this script and must not
    # hold the caller's pipes open (ctest waits for them to close). kafka.out is
    # appended to, so a restart keeps the output of the run before it.
    nohup "$java" -Xms128m -Xmx"$heap" -XX:+UseG1GC -XX:MaxGCPauseMillis=20 \
        -XX:+ExitOnOutOfMemoryError -Djava.awt.headless=true \
        -Dlog4j2.configurationFile="file:$script_dir/log4j2.properties" \
        -Dkafka.logs.dir="$data_dir" \
        -cp "$lib_dir/*" kafka.Kafka "$data_dir/server.properties" \
        </dev/null >>"$data_dir/kafka.out" 2>&1 &
    local pid=$!
    printf '%s\n' "$pid" >"$pid_file"

    local deadline=$((SECONDS + start_timeout))
    until broker_responds; do
        if ! kill -0 "$pid" 2>/dev/null; then
            show_logs
            rm -f "$pid_file"
            die "the Kafka broker exited during start-up (logs above, data in $data_dir)"
        fi
        if ((SECONDS >= deadline)); then
            show_logs
            cmd_stop
            die "timed out: the Kafka broker did not respond on $bootstrap within $start_timeout s (logs above)"
        fi
        sleep 0.5
    done
    log "Kafka $kafka_version broker is up at $bootstrap (pid $pid, data in $data_dir, ready in $((SECONDS - started)) s)"
    printf '%s\n' "$bootstrap"
}

cmd_stop() {
    local pid
    if ! pid=$(broker_pid); then
        rm -f "$pid_file"
        log "no broker running on port $port"
        return 0
    fi
    log "stopping the Kafka broker (pid $pid)"
    kill -TERM "$pid" 2>/dev/null || true
    local deadline=$((SECONDS + stop_timeout))
    while broker_pid >/dev/null && ((SECONDS < deadline)); do
        sleep 0.2
    done
    if broker_pid >/dev/null; then
        log "the broker did not stop within $stop_timeout s of SIGTERM; sending SIGKILL"
        kill -KILL "$pid" 2>/dev/null || true
        deadline=$((SECONDS + 10))
        while broker_pid >/dev/null && ((SECONDS < deadline)); do
            sleep 0.2
        done
        broker_pid >/dev/null && die "the broker (pid $pid) is still running after SIGKILL"
    fi
    rm -f "$pid_file"
    log "stopped"
}

cmd_status() {
    local pid
    if ! pid=$(broker_pid); then
        log "not running (port $port)"
        return 1
    fi
    if ! broker_responds; then
        log "running (pid $pid) but not responding to metadata requests on $bootstrap"
        return 1
    fi
    log "running (pid $pid), bootstrap $bootstrap, data in $data_dir"
}

cmd_create_topic() {
    local name=$1 partitions=$2
    [[ $name =~ ^[A-Za-z0-9._-]{1,249}$ ]] ||
        die "invalid topic name '$name': use 1 to 249 of the characters A-Z a-z 0-9 . _ -"
    if ! is_uint "$partitions" || ((partitions < 1)); then
        die "invalid partition count '$partitions': expected a whole number of at least 1"
    fi
    broker_pid >/dev/null || die "no broker running on port $port; run '$0 start' first"
    find_java
    [[ -f $lib_dir/.complete ]] || die "the Kafka jars are missing from $lib_dir; run '$0 start' first"

    run_kafka_tool org.apache.kafka.tools.TopicCommand --bootstrap-server "$bootstrap" \
        --create --topic "$name" --partitions "$partitions" --replication-factor 1 >&2 ||
        die "creating topic '$name' failed"

    # The controller creates the topic first, so wait until the broker's metadata
    # has every partition with a leader.
    local deadline=$((SECONDS + 30)) metadata
    while :; do
        metadata=$(kcat -L -b "$bootstrap" -m 2 -t "$name" 2>/dev/null || true)
        if grep -qF "topic \"$name\" with $partitions partitions:" <<<"$metadata" &&
            ! grep -q 'leader -1\|Err\|error' <<<"$metadata"; then
            break
        fi
        ((SECONDS < deadline)) || die "topic '$name' did not appear in the metadata within 30 s"
        sleep 0.2
    done
    log "created topic '$name' with $partitions partitions"
}

main() {
    local command=${1:-}
    check_settings
    case $command in
    start)
        if (($# == 1)); then
            cmd_start 0
        elif (($# == 2)) && [[ $2 == --keep-data ]]; then
            cmd_start 1
        else
            die "usage: $0 start [--keep-data]"
        fi
        ;;
    restart)
        (($# == 1)) || die "usage: $0 restart"
        cmd_start 1
        ;;
    stop)
        (($# == 1)) || die "usage: $0 stop"
        cmd_stop
        ;;
    status)
        (($# == 1)) || die "usage: $0 status"
        cmd_status
        ;;
    create-topic)
        (($# == 3)) || die "usage: $0 create-topic NAME PARTITIONS"
        cmd_create_topic "$2" "$3"
        ;;
    bootstrap)
        (($# == 1)) || die "usage: $0 bootstrap"
        printf '%s\n' "$bootstrap"
        ;;
    *)
        die "usage: $0 start [--keep-data]|restart|stop|status|create-topic NAME PARTITIONS|bootstrap"
        ;;
    esac
}

main "$@"
