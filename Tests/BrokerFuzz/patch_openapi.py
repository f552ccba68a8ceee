#!/usr/bin/env python3
"""Writes the OSB v2.17 OpenAPI file patched for fuzzing this broker (docs/broker.md §Fuzzing).

Usage: patch_openapi.py ORIGINAL.yaml PATCHED.yaml

The original is the openservicebrokerapi/servicebroker v2.17 `openapi.yaml` (Apache-2.0). The
spec (spec-v2.17.md) is authoritative where the OpenAPI file disagrees; this script closes the
known gaps of the file and describes this broker's catalog, nothing else:

  1. 412 Precondition Failed (unsupported X-Broker-API-Version) on every operation;
  2. 400 (X-Broker-API-Version missing, malformed ids) and 401 (basic auth) on every operation:
     the file lacks 401 on the three fetch endpoints and 400 on catalog and fetches;
  3. 422 on fetch-instance (spec: "being updated", ConcurrencyError);
  4. the X-Broker-API-Request-Identity request header on every operation;
  5. strings the spec says MUST be non-empty are `minLength: 1`: path ids ("a globally unique
     non-empty string"; an empty one is another URL), organization_guid and space_guid, the
     required service_id/plan_id query parameters, and `operation` ("If present, MUST be a
     non-empty string");
  6. this broker's catalog: service_id and plan_id of provision, update and bind bodies are the
     catalog's ids (a schema cannot say "an id from GET /v2/catalog"), so the generator's valid
     requests are valid for this broker;
  7. `predecessor_binding_id` is dropped from the bind body: the catalog says
     `binding_rotatable: false`, and the spec forbids platforms to rotate then;
  8. OpenAPI links from provision to fetch, last_operation, update, deprovision and bind, and from
     bind to fetch-binding, its last_operation and unbind, so the stateful phase works on
     instances and bindings that exist (the spec's workflow, which the file does not encode).
"""
import sys

import yaml

SERVICE_IDS = ["dreamface"]
PLAN_IDS = ["dreamface-development", "dreamface-deployment"]

ERROR = {"description": None, "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}


def error(description):
    e = dict(ERROR)
    e["description"] = description
    return e


def link(operation_id, **parameters):
    return {"operationId": operation_id, "parameters": parameters}


def add_links(spec):
    instance = "$request.path.instance_id"
    binding = "$request.path.binding_id"
    provision = spec["paths"]["/v2/service_instances/{instance_id}"]["put"]["responses"]
    for code in ["200", "201", "202"]:
        provision[code]["links"] = {
            "GetInstance": link("serviceInstance.get", instance_id=instance),
            "LastOperation": link("serviceInstance.lastOperation.get", instance_id=instance),
            "UpdateInstance": link("serviceInstance.update", instance_id=instance),
            "DeprovisionInstance": link("serviceInstance.deprovision", instance_id=instance),
            "Bind": link("serviceBinding.binding", instance_id=instance),
        }
    provision["202"]["links"]["LastOperation"]["parameters"]["operation"] = "$response.body#/operation"
    bind = spec["paths"]["/v2/service_instances/{instance_id}/service_bindings/{binding_id}"]["put"]["responses"]
    for code in ["200", "201"]:
        bind[code]["links"] = {
            "GetBinding": link("serviceBinding.get", instance_id=instance, binding_id=binding),
            "BindingLastOperation": link("serviceBinding.lastOperation.get", instance_id=instance, binding_id=binding),
            "Unbind": link("serviceBinding.unbinding", instance_id=instance, binding_id=binding),
        }


def main(source, target):
    with open(source) as f:
        spec = yaml.safe_load(f)
    spec["components"]["parameters"]["RequestIdentity"] = {
        "name": "X-Broker-API-Request-Identity",
        "in": "header",
        "description": "identity of the request, echoed in the response",
        "schema": {"type": "string"},
    }
    for path, item in spec["paths"].items():
        for method, op in item.items():
            params = op.setdefault("parameters", [])
            params.append({"$ref": "#/components/parameters/RequestIdentity"})
            for p in params:
                if p.get("in") == "path" or (p.get("in") == "query" and (p.get("required") or p["name"] == "operation")):
                    p["schema"]["minLength"] = 1
            responses = op["responses"]
            responses.setdefault("400", error("Bad Request"))
            responses.setdefault("401", error("Unauthorized"))
            responses.setdefault("412", error("Precondition Failed"))
            if op.get("operationId") == "serviceInstance.get":
                responses.setdefault("422", error("Unprocessable Entity"))
    schemas = spec["components"]["schemas"]
    for name in ["ServiceInstanceProvisionRequestBody", "ServiceInstanceUpdateRequestBody", "ServiceBindingRequest"]:
        props = schemas[name]["properties"]
        props["service_id"] = {"type": "string", "enum": SERVICE_IDS}
        props["plan_id"] = {"type": "string", "enum": PLAN_IDS}
    for name in ["organization_guid", "space_guid"]:
        schemas["ServiceInstanceProvisionRequestBody"]["properties"][name]["minLength"] = 1
    del schemas["ServiceBindingRequest"]["properties"]["predecessor_binding_id"]
    add_links(spec)
    header = "# GENERATED by Tests/BrokerFuzz/patch_openapi.py from the OSB v2.17 openapi.yaml\n" \
             "# (openservicebrokerapi/servicebroker, Apache-2.0). Do not edit; see the script for the patches.\n"
    with open(target, "w") as f:
        f.write(header)
        yaml.safe_dump(spec, f, sort_keys=False, width=120)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
