/**
 * The AWS actions a Lambda handler's code can call, read from the code itself so the least-privilege test
 * does not compare the stack against a hand-typed copy of it.
 *
 * From the handler's export (`functions/steps/iam/index.ts` `apply`), every declaration it references is followed,
 * through imports into functions/lib and on, with the TypeScript checker (so `status.ts` importing a constant
 * from start-provisioning.ts does not inherit StartExecution, and `iam.apply` does not inherit what only
 * `iam.compensate` calls). Each reference to an SDK command class (`new CreateRoleCommand(`) or paginator
 * (`paginateListRolePolicies(`) declared by an `@aws-sdk/client-<service>` package becomes `<prefix>:<Action>`.
 * Reachability is by reference, not by execution: a function referenced is assumed called, which errs on the
 * side of granting.
 */
import path from "node:path";
import ts from "typescript";

/** IAM's service prefix for each SDK client package. */
export const SERVICE_PREFIX_BY_PACKAGE: Readonly<Record<string, string>> = {
  "client-iam": "iam",
  "client-eks": "eks",
  "client-sfn": "states",
  "client-eventbridge": "events",
  "client-sts": "sts",
  "client-dynamodb": "dynamodb",
};

export interface SdkCallScanner {
  /** `service:Action` for every SDK command or paginator reachable from `exportName` of `file` (relative to root). */
  actionsOf(file: string, exportName: string): Set<string>;
}

function sourceFilesUnder(dir: string): string[] {
  return ts.sys.readDirectory(dir, [".ts"], ["**/*.d.ts"], ["**/*"]);
}

/** `.../node_modules/@aws-sdk/client-iam/dist-types/...` → `iam`; undefined for anything else. */
function servicePrefixOf(fileName: string): string | undefined {
  const match = /\/node_modules\/@aws-sdk\/(client-[a-z0-9-]+)\//.exec(fileName.replace(/\\/g, "/"));
  return match ? SERVICE_PREFIX_BY_PACKAGE[match[1]] : undefined;
}

/** `CreateRoleCommand` → `CreateRole`, `paginateListRolePolicies` → `ListRolePolicies`, else undefined. */
export function operationOf(name: string): string | undefined {
  const command = /^([A-Z][A-Za-z0-9]+)Command$/.exec(name);
  if (command) return command[1];
  const paginator = /^paginate([A-Z][A-Za-z0-9]+)$/.exec(name);
  return paginator?.[1];
}

export function createSdkCallScanner(root: string): SdkCallScanner {
  const functionsDir = path.join(root, "functions");
  const program = ts.createProgram({
    rootNames: sourceFilesUnder(functionsDir),
    options: {
      target: ts.ScriptTarget.ES2022,
      module: ts.ModuleKind.ESNext,
      moduleResolution: ts.ModuleResolutionKind.Bundler,
      strict: true,
      skipLibCheck: true,
      noEmit: true,
      types: ["node"],
    },
  });
  const checker = program.getTypeChecker();
  const isProjectSource = (file: ts.SourceFile) =>
    !file.isDeclarationFile && path.resolve(file.fileName).startsWith(functionsDir + path.sep);

  function resolved(symbol: ts.Symbol | undefined): ts.Symbol | undefined {
    if (symbol && symbol.flags & ts.SymbolFlags.Alias) return checker.getAliasedSymbol(symbol);
    return symbol;
  }

  /** `export const { apply } = createStep()`: the handler is the `apply` the factory returns, not the whole factory. */
  function handlerDeclarations(symbol: ts.Symbol | undefined): ts.Node[] {
    return (symbol?.declarations ?? []).flatMap((declaration): ts.Node[] => {
      if (!ts.isBindingElement(declaration)) return [declaration];
      const variable = declaration.parent.parent;
      if (!ts.isVariableDeclaration(variable) || !variable.initializer) return [declaration];
      const property = checker
        .getTypeAtLocation(variable.initializer)
        .getProperty((declaration.propertyName ?? declaration.name).getText());
      return property?.declarations ?? [declaration];
    });
  }

  function actionsOf(file: string, exportName: string): Set<string> {
    const sourceFile = program.getSourceFile(path.join(root, file));
    if (!sourceFile) throw new Error(`${file} is not among the sources under functions/`);
    const moduleSymbol = checker.getSymbolAtLocation(sourceFile);
    const exported = moduleSymbol && checker.getExportsOfModule(moduleSymbol).find((s) => s.name === exportName);
    if (!exported) throw new Error(`${file} exports no ${exportName}`);

    const actions = new Set<string>();
    const visited = new Set<ts.Node>();
    const pending: ts.Node[] = handlerDeclarations(resolved(exported));

    const follow = (symbol: ts.Symbol | undefined) => {
      const target = resolved(symbol);
      for (const declaration of target?.declarations ?? []) {
        const declaredIn = declaration.getSourceFile();
        const service = servicePrefixOf(declaredIn.fileName);
        if (service) {
          const operation = operationOf(target!.name);
          if (operation) actions.add(`${service}:${operation}`);
        } else if (isProjectSource(declaredIn) && !visited.has(declaration)) {
          pending.push(declaration);
        }
      }
    };

    const walk = (node: ts.Node): void => {
      if (ts.isIdentifier(node)) {
        follow(checker.getSymbolAtLocation(node));
        if (ts.isShorthandPropertyAssignment(node.parent)) follow(checker.getShorthandAssignmentValueSymbol(node.parent));
      }
      ts.forEachChild(node, walk);
    };

    while (pending.length) {
      const declaration = pending.pop()!;
      if (visited.has(declaration)) continue;
      visited.add(declaration);
      walk(declaration);
    }
    return actions;
  }

  return { actionsOf };
}
