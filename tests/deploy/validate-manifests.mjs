// Validates Kubernetes objects (YAML documents on stdin, as `kubectl kustomize` prints them)
// against the Kubernetes OpenAPI schema for each object's kind, as the kubernetes-models
// package compiles it: types, required fields, enumerations, formats. One line per object;
// exits 1 if any object is invalid or of a kind the package does not know.
//
//   kubectl kustomize deploy/kubernetes | node tests/deploy/validate-manifests.mjs
import { readFileSync } from "node:fs";
import { parseAllDocuments } from "yaml";

const documents = parseAllDocuments(readFileSync(0, "utf8"));
let objects = 0;
let invalid = 0;
for (const document of documents) {
  if (document.errors.length > 0) {
    console.log(`INVALID YAML: ${document.errors[0].message}`);
    invalid++;
    continue;
  }
  const object = document.toJS();
  if (object === null) continue;
  objects++;
  const name = `${object.kind}/${object.metadata?.name ?? "(no name)"}`;
  const apiVersion = String(object.apiVersion ?? "");
  // "v1" is the core group (kubernetes-models/v1); "batch/v1" is kubernetes-models/batch/v1.
  let Model;
  try {
    const module = await import(`kubernetes-models/${apiVersion}/${object.kind}`);
    Model = module[object.kind];
  } catch {
    Model = undefined;
  }
  if (Model === undefined) {
    console.log(`INVALID ${name}: no schema for kind ${object.kind} in apiVersion "${apiVersion}"`);
    invalid++;
    continue;
  }
  try {
    new Model(object).validate();
    console.log(`valid ${apiVersion} ${name}`);
  } catch (error) {
    console.log(`INVALID ${name}: ${error.message}`);
    invalid++;
  }
}
if (objects === 0) {
  console.log("INVALID: no objects on stdin");
  invalid++;
}
console.log(`${objects} objects, ${invalid} invalid`);
process.exit(invalid > 0 ? 1 : 0);
