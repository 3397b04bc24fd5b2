// Schedules a task over gRPC and prints every StreamStatus event as a JSON line until the end.
// Usage: TASKSCHED_TOKEN=... node schedule_and_watch.mjs [address] [kind] [payload-json]
import { fileURLToPath } from "node:url";
import path from "node:path";
import grpc from "@grpc/grpc-js";
import protoLoader from "@grpc/proto-loader";

const here = path.dirname(fileURLToPath(import.meta.url));
const protos = path.resolve(here, "../../protos");
const [address = "127.0.0.1:50051", kind = "demo.sleep", payload = '{"seconds": 0.2}'] =
  process.argv.slice(2);

const definition = protoLoader.loadSync("taskscheduler/v1/task_service.proto", {
  includeDirs: [protos],
  keepCase: true,
  enums: String,
  longs: Number,
  defaults: false,
});
const { TaskService } = grpc.loadPackageDefinition(definition).taskscheduler.v1;
const client = new TaskService(address, grpc.credentials.createInsecure());
const metadata = new grpc.Metadata();
metadata.set("authorization", `Bearer ${process.env.TASKSCHED_TOKEN ?? ""}`);

// protobufjs defines the well-known Struct and Value types with camelCase field names.
function toStruct(object) {
  const value = (v) => {
    if (v === null) return { nullValue: "NULL_VALUE" };
    if (typeof v === "number") return { numberValue: v };
    if (typeof v === "string") return { stringValue: v };
    if (typeof v === "boolean") return { boolValue: v };
    if (Array.isArray(v)) return { listValue: { values: v.map(value) } };
    return { structValue: toStruct(v) };
  };
  return { fields: Object.fromEntries(Object.entries(object).map(([k, v]) => [k, value(v)])) };
}

client.ScheduleTask({ kind, payload: toStruct(JSON.parse(payload)) }, metadata, (error, response) => {
  if (error) {
    console.error(`ScheduleTask failed: ${error.code} ${error.details}`);
    process.exit(1);
  }
  const stream = client.StreamStatus({ task_id: response.task.id }, metadata);
  stream.on("data", (event) => {
    console.log(JSON.stringify({ task_id: event.task_id, status: event.status, attempt: event.attempt }));
  });
  stream.on("error", (streamError) => {
    console.error(`StreamStatus failed: ${streamError.code} ${streamError.details}`);
    process.exit(1);
  });
  stream.on("end", () => client.close());
});
