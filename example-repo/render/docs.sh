#!/bin/sh
# Renders the docs site of one staging. octostage runs this in the config repository with the
# template context in OCTOSTAGE_* variables; in a real repository this would typically be
#   helm template "$OCTOSTAGE_STAGING" charts/docs --set image.tag="$OCTOSTAGE_COMMIT_SHORT"
set -eu
cat <<YAML
apiVersion: apps/v1
kind: Deployment
metadata:
  name: docs
  labels:
    app: docs
spec:
  replicas: 1
  selector:
    matchLabels:
      app: docs
  template:
    metadata:
      labels:
        app: docs
    spec:
      containers:
        - name: docs
          image: "registry.example.com/acme/docs:${OCTOSTAGE_COMMIT_SHORT}"
          ports:
            - containerPort: 8080
              protocol: TCP
---
apiVersion: v1
kind: Service
metadata:
  name: docs
spec:
  selector:
    app: docs
  ports:
    - port: 80
      targetPort: 8080
      protocol: TCP
---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  name: docs
spec:
  rules:
    - host: "${OCTOSTAGE_STAGING}.docs.staging.example.com"
      http:
        paths:
          - path: /
            pathType: Prefix
            backend:
              service:
                name: docs
                port:
                  number: 80
YAML
