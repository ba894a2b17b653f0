# Another manager of the bench's Deployments: 5 merge-patches of an annotation a second, straight
# to the API (what restarts and autoscalers look like to a watch). Usage: bench-manager.py KUBECONFIG
import json, ssl, sys, time, urllib.request, re
kc = open(sys.argv[1]).read()
server = re.search(r"server: (\S+)", kc).group(1)
token = re.search(r"token: (\S+)", kc).group(1)
ca = re.search(r"certificate-authority: (\S+)", kc).group(1)
ctx = ssl.create_default_context(cafile=ca)
def call(method, path, body=None, ctype="application/json"):
    req = urllib.request.Request(server + path, method=method, data=body,
        headers={"Authorization": "Bearer " + token, "Content-Type": ctype})
    return json.load(urllib.request.urlopen(req, context=ctx))
items = call("GET", "/apis/apps/v1/deployments?labelSelector=octostage.dev/instance%3Dbench")["items"]
targets = [(d["metadata"]["namespace"], d["metadata"]["name"]) for d in items]
i = 0
while True:
    t = time.time()
    for _ in range(5):
        ns, name = targets[i % len(targets)]; i += 1
        patch = json.dumps({"metadata": {"annotations": {"bench.example/touched": str(i)}}}).encode()
        call("PATCH", f"/apis/apps/v1/namespaces/{ns}/deployments/{name}", patch, "application/merge-patch+json")
    time.sleep(max(0, 1 - (time.time() - t)))
