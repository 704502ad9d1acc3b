// Running a view's follow-up work (a click, a search) and showing what went wrong beside it.
import { NeedsKey } from "./api.js";
import { errorBox } from "./dom.js";

export async function guard(promise, where) {
  try {
    return await promise;
  } catch (err) {
    if (err instanceof NeedsKey) dispatchEvent(new CustomEvent("memgrid:needs-key", { detail: err.message }));
    else if (err.name !== "AbortError" && where) where.append(errorBox(err));
    return undefined;
  }
}
