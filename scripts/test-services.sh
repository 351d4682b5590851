#!/usr/bin/env bash
# Installs and starts the servers the real-backend tests need, on loopback:
# RabbitMQ (Debian's rabbitmq-server) on 5672, with a TLS listener on
# 5671 (a test CA and certificate made here by openssl) and its MQTT
# plugin on 1883, and nx-27017 (a MongoDB-wire server on SQLite, from
# PyPI, in .venv/) on 27017. Also installs what the
# browser test (tests/tests/e2e/graphiql_browser.rs) needs: Debian's chromium
# and playwright-core (npm ci in tests/browser/), and what the fleet tests
# (tests/tests/e2e/scale_out.rs) put in front of their hosts: Debian's
# haproxy (TEST_HAPROXY_BIN). Idempotent: what is
# installed is not installed again, what answers is not started again.
#
# Source it (scripts/test.sh does) to get TEST_MONGODB_URL,
# TEST_RABBITMQ_URL, TEST_RABBITMQ_TLS_URL, TEST_RABBITMQ_TLS_CA_FILE and
# TEST_RABBITMQ_MQTT_URL exported; the tests skip without them outside CI
# and fail without them in CI.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

NX_VERSION=0.8.1
MONGO_PORT=27017
RABBIT_PORT=5672
RABBIT_TLS_PORT=5671
# RabbitMQ's MQTT plugin: how events leave `spin up` (tests/tests/e2e/spin_up.rs).
RABBIT_MQTT_PORT=1883
STATE_DIR=${TEST_SERVICES_DIR:-${TMPDIR:-/tmp}/booking-test-services}
mkdir -p "$STATE_DIR"
RABBIT_TLS_DIR=$STATE_DIR/rabbitmq-tls
# Read by RabbitMQ at start: conf.d is merged into its configuration.
RABBIT_TLS_CONF=/etc/rabbitmq/conf.d/90-booking-test-tls.conf

# True when something accepts TCP connections on 127.0.0.1:$1.
port_open() {
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

wait_for_port() {
    local port=$1 what=$2 seconds=$3
    for _ in $(seq $((seconds * 5))); do
        port_open "$port" && return 0
        sleep 0.2
    done
    echo "test-services: $what did not open port $port within ${seconds}s" >&2
    return 1
}

# A test CA and a certificate of it for 127.0.0.1 and localhost, made
# once (again if the state directory was cleaned).
make_rabbitmq_certificate() {
    [ -s "$RABBIT_TLS_DIR/server.pem" ] && return 0
    mkdir -p "$RABBIT_TLS_DIR"
    (
        cd "$RABBIT_TLS_DIR"
        openssl req -x509 -newkey rsa:2048 -nodes -days 3650 -subj "/CN=booking test CA" \
            -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" \
            -keyout ca.key -out ca.pem 2>/dev/null
        openssl req -newkey rsa:2048 -nodes -subj "/CN=localhost" \
            -keyout server.key -out server.csr 2>/dev/null
        printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n' >server.ext
        openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 3650 \
            -extfile server.ext -out server.pem 2>/dev/null
        # RabbitMQ runs as its own user; a test key has nothing to hide.
        chmod 644 server.key
    )
}

# Writes RabbitMQ's TLS listener settings; true when they changed.
configure_rabbitmq_tls() {
    make_rabbitmq_certificate
    local wanted
    wanted="listeners.ssl.default = $RABBIT_TLS_PORT
ssl_options.cacertfile = $RABBIT_TLS_DIR/ca.pem
ssl_options.certfile = $RABBIT_TLS_DIR/server.pem
ssl_options.keyfile = $RABBIT_TLS_DIR/server.key
ssl_options.verify = verify_none
ssl_options.fail_if_no_peer_cert = false"
    [ "$(cat "$RABBIT_TLS_CONF" 2>/dev/null)" = "$wanted" ] && return 1
    mkdir -p "$(dirname "$RABBIT_TLS_CONF")"
    printf '%s\n' "$wanted" >"$RABBIT_TLS_CONF"
}

start_rabbitmq() {
    if ! command -v rabbitmq-server >/dev/null; then
        # A new machine's package lists may be missing or stale.
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq rabbitmq-server >/dev/null
    fi
    local changed=false
    configure_rabbitmq_tls && changed=true
    if port_open "$RABBIT_PORT"; then
        if port_open "$RABBIT_TLS_PORT" && [ "$changed" = false ]; then
            echo "test-services: RabbitMQ already answers on $RABBIT_PORT and $RABBIT_TLS_PORT"
            # A node started before the MQTT plugin was wanted takes it live.
            port_open "$RABBIT_MQTT_PORT" || enable_rabbitmq_mqtt
            return 0
        fi
        # Listeners are read at start only.
        echo "test-services: restarting RabbitMQ for its TLS listener"
        rabbitmqctl stop >/dev/null
    fi
    echo "test-services: starting RabbitMQ"
    rabbitmq-plugins enable --offline rabbitmq_mqtt >/dev/null
    rabbitmq-server -detached
    wait_for_port "$RABBIT_PORT" RabbitMQ 60
    timeout 60 rabbitmqctl await_startup >/dev/null
    wait_for_port "$RABBIT_TLS_PORT" "RabbitMQ (TLS)" 30
    wait_for_port "$RABBIT_MQTT_PORT" "RabbitMQ (MQTT)" 30
}

enable_rabbitmq_mqtt() {
    echo "test-services: enabling RabbitMQ's MQTT plugin"
    timeout 60 rabbitmq-plugins enable rabbitmq_mqtt >/dev/null
    wait_for_port "$RABBIT_MQTT_PORT" "RabbitMQ (MQTT)" 30
}

start_mongo() {
    if [ ! -x .venv/bin/nx-27017 ] || ! .venv/bin/pip show nx-27017 2>/dev/null | grep -qx "Version: $NX_VERSION"; then
        [ -x .venv/bin/pip ] || python3 -m venv .venv
        .venv/bin/pip install -q --disable-pip-version-check "nx-27017==$NX_VERSION"
    fi
    if port_open "$MONGO_PORT"; then
        echo "test-services: a MongoDB-wire server already answers on $MONGO_PORT"
        return 0
    fi
    echo "test-services: starting nx-27017 $NX_VERSION"
    # A fresh data directory per start: every test run makes databases of
    # its own, and nothing in them is worth keeping.
    .venv/bin/nx-27017 -d --host 127.0.0.1 -p "$MONGO_PORT" \
        --data-dir "$(mktemp -d "$STATE_DIR/mongo-data.XXXXXX")" \
        --pid-file "$STATE_DIR/nx-27017.pid" \
        --log-file "$STATE_DIR/nx-27017.log"
    wait_for_port "$MONGO_PORT" nx-27017 30
}

install_browser() {
    if [ ! -x /usr/bin/chromium ]; then
        echo "test-services: installing chromium"
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
    fi
    if ! command -v npm >/dev/null; then
        echo "test-services: npm is missing (Node.js >= 20 needed): the browser test cannot run" >&2
        return 0
    fi
    # npm keeps a copy of the lock file it installed from; reinstall only
    # when the committed one changed since.
    if [ ! tests/browser/node_modules/.package-lock.json -nt tests/browser/package-lock.json ]; then
        echo "test-services: npm ci in tests/browser"
        npm ci --prefix tests/browser --no-audit --no-fund --ignore-scripts >/dev/null
    fi
}

install_haproxy() {
    if ! command -v haproxy >/dev/null && [ ! -x /usr/sbin/haproxy ]; then
        echo "test-services: installing haproxy"
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq haproxy >/dev/null
    fi
    # The package starts a service of its own on boot machines; the tests
    # run their own haproxy processes.
    TEST_HAPROXY_BIN="$(command -v haproxy || echo /usr/sbin/haproxy)"
}

start_rabbitmq
start_mongo
install_browser
install_haproxy

export TEST_RABBITMQ_URL="amqp://guest:guest@127.0.0.1:$RABBIT_PORT/%2f"
export TEST_RABBITMQ_TLS_URL="amqps://guest:guest@127.0.0.1:$RABBIT_TLS_PORT/%2f"
export TEST_RABBITMQ_TLS_CA_FILE="$RABBIT_TLS_DIR/ca.pem"
export TEST_RABBITMQ_MQTT_URL="mqtt://127.0.0.1:$RABBIT_MQTT_PORT"
export TEST_MONGODB_URL="mongodb://127.0.0.1:$MONGO_PORT/?directConnection=true"
export TEST_HAPROXY_BIN
echo "test-services: TEST_RABBITMQ_URL=$TEST_RABBITMQ_URL TEST_RABBITMQ_TLS_URL=$TEST_RABBITMQ_TLS_URL TEST_RABBITMQ_MQTT_URL=$TEST_RABBITMQ_MQTT_URL TEST_MONGODB_URL=$TEST_MONGODB_URL TEST_HAPROXY_BIN=$TEST_HAPROXY_BIN"
