// The process-wide Vulkan instance: the loader (opened with dlopen, so
// libseqk does not need libvulkan to load), the function table, the optional
// validation layer with a messenger that records what it reports, and device
// enumeration.
#include <dlfcn.h>

#include <cstdlib>
#include <cstring>
#include <iostream>
#include <mutex>
#include <string>
#include <vector>

#include "kernels/vulkan/runtime.h"
#include "seqk/error.h"

namespace seqk::vk {
namespace detail {

#define SEQK_VK_DEFINE(name) PFN_##name name = nullptr;
SEQK_VK_GLOBAL_FUNCTIONS(SEQK_VK_DEFINE)
SEQK_VK_INSTANCE_FUNCTIONS(SEQK_VK_DEFINE)
#undef SEQK_VK_DEFINE

const char* result_name(VkResult result) {
  switch (result) {
#define SEQK_CASE(r) \
  case r:            \
    return #r;
    SEQK_CASE(VK_SUCCESS)
    SEQK_CASE(VK_NOT_READY)
    SEQK_CASE(VK_TIMEOUT)
    SEQK_CASE(VK_INCOMPLETE)
    SEQK_CASE(VK_ERROR_OUT_OF_HOST_MEMORY)
    SEQK_CASE(VK_ERROR_OUT_OF_DEVICE_MEMORY)
    SEQK_CASE(VK_ERROR_INITIALIZATION_FAILED)
    SEQK_CASE(VK_ERROR_DEVICE_LOST)
    SEQK_CASE(VK_ERROR_MEMORY_MAP_FAILED)
    SEQK_CASE(VK_ERROR_LAYER_NOT_PRESENT)
    SEQK_CASE(VK_ERROR_EXTENSION_NOT_PRESENT)
    SEQK_CASE(VK_ERROR_FEATURE_NOT_PRESENT)
    SEQK_CASE(VK_ERROR_INCOMPATIBLE_DRIVER)
    SEQK_CASE(VK_ERROR_TOO_MANY_OBJECTS)
    SEQK_CASE(VK_ERROR_FORMAT_NOT_SUPPORTED)
    SEQK_CASE(VK_ERROR_FRAGMENTED_POOL)
    SEQK_CASE(VK_ERROR_OUT_OF_POOL_MEMORY)
    SEQK_CASE(VK_ERROR_INVALID_SHADER_NV)
    SEQK_CASE(VK_ERROR_UNKNOWN)
#undef SEQK_CASE
    default:
      return "unknown VkResult";
  }
}

void check(VkResult result, const std::string& call) {
  require(result == VK_SUCCESS, "vulkan: ", call, " failed: ", result_name(result), " (", static_cast<int>(result),
          ")");
}

namespace {

std::mutex messages_mutex;
std::vector<std::string> messages;

VKAPI_ATTR VkBool32 VKAPI_CALL on_message(VkDebugUtilsMessageSeverityFlagBitsEXT severity,
                                          VkDebugUtilsMessageTypeFlagsEXT, const VkDebugUtilsMessengerCallbackDataEXT* data,
                                          void*) {
  std::string text = (severity & VK_DEBUG_UTILS_MESSAGE_SEVERITY_ERROR_BIT_EXT) ? "error: " : "warning: ";
  text += data && data->pMessage ? data->pMessage : "(no message)";
  std::cerr << "seqk vulkan validation " << text << "\n";
  std::lock_guard lock(messages_mutex);
  messages.push_back(std::move(text));
  return VK_FALSE;  // never abort the call: the test decides
}

bool env_validation() {
  const char* value = std::getenv("SEQK_VULKAN_VALIDATION");
  return value && std::strcmp(value, "1") == 0;
}

// Never destroyed: device objects may outlive any static we could tie it to,
// and the driver cleans up at exit.
struct Instance {
  void* loader = nullptr;
  VkInstance handle = VK_NULL_HANDLE;
  VkDebugUtilsMessengerEXT messenger = VK_NULL_HANDLE;
  bool validation = false;
  std::string error;  // why creation failed, rethrown on every use
};

void create(Instance& state) {
  for (const char* name : {"libvulkan.so.1", "libvulkan.so"}) {
    if ((state.loader = dlopen(name, RTLD_NOW | RTLD_LOCAL))) break;
  }
  require(state.loader != nullptr, "vulkan: no Vulkan loader (libvulkan.so.1) found: ", dlerror());
  auto get = reinterpret_cast<PFN_vkGetInstanceProcAddr>(dlsym(state.loader, "vkGetInstanceProcAddr"));
  require(get != nullptr, "vulkan: the loader has no vkGetInstanceProcAddr");
#define SEQK_VK_LOAD_GLOBAL(name)                                                    \
  name = reinterpret_cast<PFN_##name>(get(VK_NULL_HANDLE, #name));                   \
  require(name != nullptr, "vulkan: the loader has no " #name);
  SEQK_VK_GLOBAL_FUNCTIONS(SEQK_VK_LOAD_GLOBAL)
#undef SEQK_VK_LOAD_GLOBAL

  state.validation = env_validation();
  std::vector<const char*> layers;
  std::vector<const char*> extensions;
  if (state.validation) {
    uint32_t count = 0;
    check(vkEnumerateInstanceLayerProperties(&count, nullptr), "vkEnumerateInstanceLayerProperties");
    std::vector<VkLayerProperties> available(count);
    check(vkEnumerateInstanceLayerProperties(&count, available.data()), "vkEnumerateInstanceLayerProperties");
    bool found = false;
    for (const VkLayerProperties& layer : available) found |= std::strcmp(layer.layerName, "VK_LAYER_KHRONOS_validation") == 0;
    require(found, "vulkan: SEQK_VULKAN_VALIDATION=1 but VK_LAYER_KHRONOS_validation is not installed");
    layers.push_back("VK_LAYER_KHRONOS_validation");
    extensions.push_back(VK_EXT_DEBUG_UTILS_EXTENSION_NAME);
    extensions.push_back(VK_EXT_VALIDATION_FEATURES_EXTENSION_NAME);
  }

  VkDebugUtilsMessengerCreateInfoEXT messenger_info{};
  messenger_info.sType = VK_STRUCTURE_TYPE_DEBUG_UTILS_MESSENGER_CREATE_INFO_EXT;
  messenger_info.messageSeverity =
      VK_DEBUG_UTILS_MESSAGE_SEVERITY_WARNING_BIT_EXT | VK_DEBUG_UTILS_MESSAGE_SEVERITY_ERROR_BIT_EXT;
  messenger_info.messageType = VK_DEBUG_UTILS_MESSAGE_TYPE_GENERAL_BIT_EXT |
                               VK_DEBUG_UTILS_MESSAGE_TYPE_VALIDATION_BIT_EXT |
                               VK_DEBUG_UTILS_MESSAGE_TYPE_PERFORMANCE_BIT_EXT;
  messenger_info.pfnUserCallback = on_message;

  VkApplicationInfo app{};
  app.sType = VK_STRUCTURE_TYPE_APPLICATION_INFO;
  app.pApplicationName = "seqk";
  app.pEngineName = "seqk";
  app.apiVersion = VK_API_VERSION_1_2;
  VkInstanceCreateInfo info{};
  info.sType = VK_STRUCTURE_TYPE_INSTANCE_CREATE_INFO;
  // Synchronization validation too: it reports a dispatch that reads or
  // writes what an earlier one wrote without a barrier between them, which
  // a device that runs dispatches one by one (lavapipe) would never show.
  const VkValidationFeatureEnableEXT enabled_features[] = {VK_VALIDATION_FEATURE_ENABLE_SYNCHRONIZATION_VALIDATION_EXT};
  VkValidationFeaturesEXT features{};
  features.sType = VK_STRUCTURE_TYPE_VALIDATION_FEATURES_EXT;
  features.enabledValidationFeatureCount = 1;
  features.pEnabledValidationFeatures = enabled_features;
  // The messenger is chained too, so instance creation and destruction are validated as well.
  features.pNext = &messenger_info;
  info.pNext = state.validation ? static_cast<const void*>(&features) : nullptr;
  info.pApplicationInfo = &app;
  info.enabledLayerCount = static_cast<uint32_t>(layers.size());
  info.ppEnabledLayerNames = layers.data();
  info.enabledExtensionCount = static_cast<uint32_t>(extensions.size());
  info.ppEnabledExtensionNames = extensions.data();
  const VkResult created = vkCreateInstance(&info, nullptr, &state.handle);
  require(created != VK_ERROR_INCOMPATIBLE_DRIVER,
          "vulkan: no Vulkan driver found (vkCreateInstance: VK_ERROR_INCOMPATIBLE_DRIVER); install one, e.g. "
          "mesa-vulkan-drivers for the lavapipe CPU device");
  check(created, "vkCreateInstance");

#define SEQK_VK_LOAD(name)                                                   \
  name = reinterpret_cast<PFN_##name>(get(state.handle, #name));             \
  require(name != nullptr, "vulkan: the loader has no " #name);
  SEQK_VK_INSTANCE_FUNCTIONS(SEQK_VK_LOAD)
#undef SEQK_VK_LOAD

  if (state.validation) {
    auto create_messenger =
        reinterpret_cast<PFN_vkCreateDebugUtilsMessengerEXT>(get(state.handle, "vkCreateDebugUtilsMessengerEXT"));
    require(create_messenger != nullptr, "vulkan: no vkCreateDebugUtilsMessengerEXT");
    check(create_messenger(state.handle, &messenger_info, nullptr, &state.messenger), "vkCreateDebugUtilsMessengerEXT");
  }
}

Instance& state() {
  static Instance instance;
  static std::once_flag once;
  std::call_once(once, [] {
    try {
      create(instance);
    } catch (const Error& e) {
      instance.error = e.what();
    }
  });
  if (!instance.error.empty()) throw Error(instance.error);
  return instance;
}

}  // namespace

VkInstance instance() { return state().handle; }

std::vector<VkPhysicalDevice> physical_devices() {
  VkInstance handle = instance();
  uint32_t count = 0;
  check(vkEnumeratePhysicalDevices(handle, &count, nullptr), "vkEnumeratePhysicalDevices");
  std::vector<VkPhysicalDevice> devices(count);
  check(vkEnumeratePhysicalDevices(handle, &count, devices.data()), "vkEnumeratePhysicalDevices");
  devices.resize(count);
  return devices;
}

int compute_queue_family(VkPhysicalDevice physical) {
  uint32_t count = 0;
  vkGetPhysicalDeviceQueueFamilyProperties(physical, &count, nullptr);
  std::vector<VkQueueFamilyProperties> families(count);
  vkGetPhysicalDeviceQueueFamilyProperties(physical, &count, families.data());
  int best = -1;
  for (uint32_t i = 0; i < count; ++i) {
    if (!(families[i].queueFlags & VK_QUEUE_COMPUTE_BIT)) continue;
    // A compute-only family is usually an async queue that graphics work
    // does not share.
    if (best < 0 || !(families[i].queueFlags & VK_QUEUE_GRAPHICS_BIT)) best = static_cast<int>(i);
  }
  return best;
}

DeviceInfo describe(VkPhysicalDevice physical, int index) {
  VkPhysicalDeviceProperties base{};
  vkGetPhysicalDeviceProperties(physical, &base);
  // Vulkan 1.2 structs may only be chained when the device has 1.2.
  const bool v12 = base.apiVersion >= VK_API_VERSION_1_2;

  VkPhysicalDeviceSubgroupProperties subgroup{};
  subgroup.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_SUBGROUP_PROPERTIES;
  VkPhysicalDeviceDriverProperties driver{};
  driver.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_DRIVER_PROPERTIES;
  if (v12) subgroup.pNext = &driver;
  VkPhysicalDeviceProperties2 properties{};
  properties.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_PROPERTIES_2;
  if (base.apiVersion >= VK_API_VERSION_1_1) properties.pNext = &subgroup;
  vkGetPhysicalDeviceProperties2(physical, &properties);

  VkPhysicalDeviceShaderFloat16Int8Features float16{};
  float16.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_SHADER_FLOAT16_INT8_FEATURES;
  VkPhysicalDeviceFeatures2 features{};
  features.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_FEATURES_2;
  if (v12) features.pNext = &float16;
  vkGetPhysicalDeviceFeatures2(physical, &features);

  DeviceInfo info;
  info.index = index;
  info.name = base.deviceName;
  info.driver_name = v12 ? driver.driverName : "unknown (Vulkan < 1.2)";
  switch (base.deviceType) {
    case VK_PHYSICAL_DEVICE_TYPE_INTEGRATED_GPU: info.type = DeviceType::kIntegratedGpu; break;
    case VK_PHYSICAL_DEVICE_TYPE_DISCRETE_GPU: info.type = DeviceType::kDiscreteGpu; break;
    case VK_PHYSICAL_DEVICE_TYPE_VIRTUAL_GPU: info.type = DeviceType::kVirtualGpu; break;
    case VK_PHYSICAL_DEVICE_TYPE_CPU: info.type = DeviceType::kCpu; break;
    default: info.type = DeviceType::kOther; break;
  }
  info.api_version = base.apiVersion;
  info.subgroup_size = subgroup.subgroupSize;
  info.max_shared_memory = base.limits.maxComputeSharedMemorySize;
  info.max_workgroup_invocations = base.limits.maxComputeWorkGroupInvocations;
  info.fp16 = v12 && float16.shaderFloat16;
  const int family = compute_queue_family(physical);
  if (family >= 0) {
    uint32_t count = 0;
    vkGetPhysicalDeviceQueueFamilyProperties(physical, &count, nullptr);
    std::vector<VkQueueFamilyProperties> families(count);
    vkGetPhysicalDeviceQueueFamilyProperties(physical, &count, families.data());
    info.timestamps = families[family].timestampValidBits > 0 && base.limits.timestampPeriod > 0;
  }
  // Integrated GPUs and CPU devices share host memory: map buffers directly.
  // SEQK_VULKAN_FORCE_STAGING=1 takes the staging path anyway, so it can be
  // tested on such devices too.
  const char* force_staging = std::getenv("SEQK_VULKAN_FORCE_STAGING");
  info.unified_memory = (info.type == DeviceType::kIntegratedGpu || info.type == DeviceType::kCpu) &&
                        !(force_staging && std::strcmp(force_staging, "1") == 0);
  return info;
}

}  // namespace detail

const char* to_string(DeviceType type) {
  switch (type) {
    case DeviceType::kIntegratedGpu: return "integrated GPU";
    case DeviceType::kDiscreteGpu: return "discrete GPU";
    case DeviceType::kVirtualGpu: return "virtual GPU";
    case DeviceType::kCpu: return "CPU";
    default: return "other";
  }
}

std::vector<DeviceInfo> list_devices() {
  std::vector<DeviceInfo> list;
  const std::vector<VkPhysicalDevice> devices = detail::physical_devices();
  for (std::size_t i = 0; i < devices.size(); ++i) list.push_back(detail::describe(devices[i], static_cast<int>(i)));
  return list;
}

bool vulkan_available() noexcept {
  try {
    return !detail::physical_devices().empty();
  } catch (...) {
    return false;
  }
}

bool validation_enabled() {
  try {
    return detail::state().validation;
  } catch (const Error&) {
    return false;
  }
}

std::size_t validation_message_count() {
  std::lock_guard lock(detail::messages_mutex);
  return detail::messages.size();
}

std::vector<std::string> validation_messages() {
  std::lock_guard lock(detail::messages_mutex);
  return detail::messages;
}

void clear_validation_messages() {
  std::lock_guard lock(detail::messages_mutex);
  detail::messages.clear();
}

}  // namespace seqk::vk
