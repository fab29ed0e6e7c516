#!/usr/bin/env bash
# Fleet certificates and the admin token for deploy/kubernetes, made with
# `fleetcache cert`. See README.md ("Certificates") for what each pod presents
# and how to rotate.
#
#   certs.sh ca DIR [NAME]
#       Creates the fleet CA in DIR (ca.pem, ca.key), NAME its common name
#       (give a new CA a distinct one). Keep DIR off the cluster.
#   certs.sh secret --ca DIR [--trust DIR]... [--namespace NS] (--replicas N | NAME...)
#       Prints the Secret fleetcache-certs: ca.pem and, for each node name,
#       NAME.pem and NAME.key signed by the CA in DIR. --replicas N names the
#       StatefulSet's pods fleetcache-0 .. fleetcache-(N-1); for the DaemonSet
#       overlay pass the Kubernetes node names. Issue names ahead of scaling.
#       --trust adds another CA's certificate to ca.pem (nodes trust every CA
#       in it): how a fleet moves to a new CA without splitting (README).
#   certs.sh token [--namespace NS]
#       Prints the Secret fleetcache-admin-token with a fresh random token.
#
# Apply the output with `kubectl apply -f -`. The fleetcache binary is
# $FLEETCACHE if set, else `fleetcache` on PATH; a container works too:
#   FLEETCACHE="docker run --rm -u $(id -u) -v $PWD:$PWD -w $PWD fleetcache:0.1.0"
set -euo pipefail

die() { echo "certs.sh: $*" >&2; exit 2; }
usage() { sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//' >&2; exit 2; }

fleetcache() {
    # Word splitting on purpose: FLEETCACHE may be a command with arguments.
    # shellcheck disable=SC2086
    env -u FLEETCACHE_BIN ${FLEETCACHE:-fleetcache} "$@"
}

b64() { base64 -w0 < "$1"; }

secret_head() { # name namespace
    printf 'apiVersion: v1\nkind: Secret\nmetadata:\n  name: %s\n' "$1"
    [[ -n "$2" ]] && printf '  namespace: %s\n' "$2"
    printf '  labels:\n    app.kubernetes.io/name: fleetcache\n    app.kubernetes.io/part-of: fleetcache\n'
    printf 'type: Opaque\ndata:\n'
}

cmd_ca() {
    [[ $# -eq 1 || $# -eq 2 ]] || usage
    fleetcache cert ca --out "$1" ${2:+--name "$2"} >&2
    echo "certs.sh: CA in $1; ca.key signs fleet members: keep it offline" >&2
}

cmd_secret() {
    local ca="" namespace="" replicas="" names=() trust=()
    while [[ $# -gt 0 ]]; do
        case "$1" in
            --ca) ca="${2:?}"; shift 2 ;;
            --trust) trust+=("${2:?}"); shift 2 ;;
            --namespace|-n) namespace="${2:?}"; shift 2 ;;
            --replicas) replicas="${2:?}"; shift 2 ;;
            -*) usage ;;
            *) names+=("$1"); shift ;;
        esac
    done
    [[ -n "$ca" ]] || die "--ca DIR is required"
    [[ -f "$ca/ca.pem" && -f "$ca/ca.key" ]] || die "$ca has no ca.pem and ca.key (certs.sh ca $ca)"
    if [[ -n "$replicas" ]]; then
        [[ "$replicas" =~ ^[1-9][0-9]*$ ]] || die "--replicas needs a positive number"
        for ((i = 0; i < replicas; i++)); do names+=("fleetcache-$i"); done
    fi
    [[ ${#names[@]} -gt 0 ]] || die "no node names (give --replicas N or NAME...)"

    local tmp
    tmp=$(mktemp -d)
    # shellcheck disable=SC2064
    trap "rm -rf '$tmp'" EXIT
    declare -A seen=()
    for name in "${names[@]}"; do
        [[ -z "${seen[$name]:-}" ]] || die "node name $name given twice: every pod needs its own"
        seen[$name]=1
        # Pod and node names are lower-case DNS names; the pod looks its files
        # up by its own name, and fleetcache would lower-case the name anyway.
        [[ "$name" =~ ^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$ ]] ||
            die "$name is not a Kubernetes pod or node name (lower-case DNS name)"
        fleetcache cert node --ca "$ca" --name "$name" --out "$tmp/$name" >/dev/null
    done
    cp "$ca/ca.pem" "$tmp/ca.pem"
    for extra in "${trust[@]}"; do
        [[ -f "$extra/ca.pem" ]] || die "$extra has no ca.pem"
        cat "$extra/ca.pem" >> "$tmp/ca.pem"
    done
    secret_head fleetcache-certs "$namespace"
    printf '  ca.pem: %s\n' "$(b64 "$tmp/ca.pem")"
    for name in "${names[@]}"; do
        printf '  %s.pem: %s\n' "$name" "$(b64 "$tmp/$name/node.pem")"
        printf '  %s.key: %s\n' "$name" "$(b64 "$tmp/$name/node.key")"
    done
}

cmd_token() {
    local namespace=""
    while [[ $# -gt 0 ]]; do
        case "$1" in
            --namespace|-n) namespace="${2:?}"; shift 2 ;;
            *) usage ;;
        esac
    done
    local token
    token=$(od -An -tx1 -N32 /dev/urandom | tr -d ' \n')
    secret_head fleetcache-admin-token "$namespace"
    printf '  token: %s\n' "$(printf '%s' "$token" | base64 -w0)"
}

[[ $# -ge 1 ]] || usage
sub=$1
shift
case "$sub" in
    ca) cmd_ca "$@" ;;
    secret) cmd_secret "$@" ;;
    token) cmd_token "$@" ;;
    *) usage ;;
esac
