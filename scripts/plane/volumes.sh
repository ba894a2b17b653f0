#!/usr/bin/env bash
# The local control plane's volume provisioner (StorageClass `standard`, see storage.yaml): for
# each claim that waits for this provisioner, a PersistentVolume bound to it; a released volume of
# this provisioner is deleted. Watches through kubectl and starts its watches again when they end.
#   volumes.sh KUBECTL KUBECONFIG
set -uo pipefail
kubectl=$1 kc=$2
PROVISIONER=sim.octostage.dev/hostpath
k() { "$kubectl" --kubeconfig "$kc" "$@"; }

claims() {
  k get pvc -A --watch -o "jsonpath={.metadata.namespace}|{.metadata.name}|{.metadata.uid}|{.status.phase}|{.spec.volumeName}|{.metadata.annotations.volume\.kubernetes\.io/storage-provisioner}|{.spec.resources.requests.storage}|{.spec.accessModes[0]}|{.spec.storageClassName}{\"\n\"}" |
    while IFS='|' read -r ns name uid phase volume provisioner size mode class; do
      [ "$phase" = Pending ] && [ -z "$volume" ] && [ "$provisioner" = "$PROVISIONER" ] || continue
      k create -f - >/dev/null 2>&1 <<PV
apiVersion: v1
kind: PersistentVolume
metadata:
  name: pvc-$uid
  annotations: {pv.kubernetes.io/provisioned-by: $PROVISIONER}
spec:
  capacity: {storage: ${size:-1Gi}}
  accessModes: [${mode:-ReadWriteOnce}]
  persistentVolumeReclaimPolicy: Delete
  storageClassName: $class
  hostPath: {path: /var/lib/octostage-sim/$uid}
  claimRef: {namespace: $ns, name: $name, uid: $uid}
PV
    done
}

released() {
  k get pv --watch -o "jsonpath={.metadata.name}|{.status.phase}|{.metadata.annotations.pv\.kubernetes\.io/provisioned-by}{\"\n\"}" |
    while IFS='|' read -r name phase by; do
      [ "$by" = "$PROVISIONER" ] && { [ "$phase" = Released ] || [ "$phase" = Failed ]; } || continue
      k delete pv "$name" --wait=false >/dev/null 2>&1
    done
}

forever() { while true; do "$1"; sleep 1; done; }
forever claims &
forever released &
wait
